"""Credentials, JWTs and token caches with single-flight refresh."""

from .._secret import Secret
from ._cache import TokenCache
from ._credentials import Credentials, GitHubApp, PersonalAccessToken, as_credentials, load_rsa_private_key
from ._hints import credentials_hint
from ._secret_auth import BearerAuth, host_of

__all__ = [
    "BearerAuth",
    "Credentials",
    "GitHubApp",
    "PersonalAccessToken",
    "Secret",
    "TokenCache",
    "as_credentials",
    "credentials_hint",
    "host_of",
    "load_rsa_private_key",
]
