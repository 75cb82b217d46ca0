"""Credentials, JWTs and token caches with single-flight refresh."""

from .._secret import Secret
from ._cache import TokenCache
from ._credentials import Credentials, GitHubApp, PersonalAccessToken, load_rsa_private_key
from ._secret_auth import BearerAuth, host_of

__all__ = [
    "BearerAuth",
    "Credentials",
    "GitHubApp",
    "PersonalAccessToken",
    "Secret",
    "TokenCache",
    "host_of",
    "load_rsa_private_key",
]
