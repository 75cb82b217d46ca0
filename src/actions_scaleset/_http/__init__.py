"""The HTTP core every layer sends through: retry policy, error mapping, redacted logs."""

from ._core import (
    DEFAULT_TIMEOUT,
    POLL_LIMITS,
    POLL_TIMEOUT,
    HTTPCore,
    PollPool,
    decode_json,
    decode_model,
    invalid_response,
    pool_limit,
    user_agent,
)
from ._lifecycle import HTTPLifecycle
from ._retry import (
    ACTIONS_RETRY,
    MESSAGE_POLL_RETRY,
    NO_RETRY,
    REGISTRATION_RETRY,
    REST_RETRY,
    SINGLE_USE_RETRY,
    RetryPolicy,
)
from ._urls import combine_url, path_id, resolve_url, url_problem, with_path_segment, with_query

__all__ = [
    "ACTIONS_RETRY",
    "DEFAULT_TIMEOUT",
    "MESSAGE_POLL_RETRY",
    "NO_RETRY",
    "POLL_LIMITS",
    "POLL_TIMEOUT",
    "REGISTRATION_RETRY",
    "REST_RETRY",
    "SINGLE_USE_RETRY",
    "HTTPCore",
    "HTTPLifecycle",
    "PollPool",
    "RetryPolicy",
    "combine_url",
    "decode_json",
    "decode_model",
    "invalid_response",
    "path_id",
    "pool_limit",
    "resolve_url",
    "url_problem",
    "user_agent",
    "with_path_segment",
    "with_query",
]
