"""Every public decoding path, fed arbitrary input, raises nothing but `ActionsScaleSetError` (issue 10).

The inputs are what a hostile or broken server could send: arbitrary JSON (nested far
deeper than Python's stack included), arbitrary bytes, and arbitrary headers (a corrupt
`Content-Encoding`, a bad `Link`, absurd `Retry-After` and rate-limit values). The
paths are the real clients against a mock transport answering the generated reply
(`ScaleSetClient`, `MessageSession.get_message`, `GitHubClient.list_runners`), and the
pure decoders (`models.structure`, `JitConfig.decode`, `parse_message`,
`parse_job_message`, `error_from_response`, which must return and never raise).
`tests/test_hostile_inputs.py` names each known bad input on its own.
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import attrs
import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import actions_scaleset as asc
from actions_scaleset import models
from actions_scaleset._http import HTTPCore
from actions_scaleset.errors import AuthenticationError, MessageQueueTokenExpiredError, error_from_response
from actions_scaleset.models import MAX_JSON_DEPTH
from actions_scaleset.runner import JitConfig
from actions_scaleset.runner._jobmessage import parse_job_message
from actions_scaleset.runner._messages import MessageEnvelope, parse_message
from tests.scaleset_mocks import admin_jwt
from tests.support import RUNNER_FIXTURES, SCALESET_FIXTURES, FakeClock, load_fixture

CLIENT_PATHS = settings(max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture])
PURE_PATHS = settings(max_examples=200)

API = "https://api.github.com"
ADMIN = "https://pipelines.actions.example/tenant-1/"
SESSION = load_fixture("session_create_response.json", SCALESET_FIXTURES)
JOB_MESSAGE = load_fixture("run_acquirejob_response_job_message.json", RUNNER_FIXTURES)
JIT_FILES = {
    ".runner": load_fixture("jit_runner_file.json", RUNNER_FIXTURES),
    ".credentials": load_fixture("jit_credentials_file.json", RUNNER_FIXTURES),
    ".credentials_rsaparams": load_fixture("jit_credentials_rsaparams_file.json", RUNNER_FIXTURES),
}

# ---------------------------------------------------------------- arbitrary JSON

HOSTILE_URLS = [
    "http://[::1/x",
    "https://a\x00b.example/",
    "https://☃.com/",
    "https://xn--n3h.com/",
    "ftp://x.example/",
    "/relative",
    "http://x.example:99999/",
    "https://ok.example/path?q=1",
]
TIMES = [
    "0001-01-01T00:00:00Z",
    "2026-05-04T10:07:01.1234567Z",
    "9999-12-31T23:00:00-02:00",
    "2026-13-45T99:99:99Z",
]
WIRE_KEYS = [
    "id", "name", "value", "count", "labels", "type", "RunnerSetting", "ephemeral", "statistics",
    "messageId", "messageType", "body", "sessionId", "messageQueueUrl", "messageQueueAccessToken",
    "runnerScaleSet", "runnerRequestId", "runners", "runner", "token", "url", "expires_at",
    "encodedJITConfig", "totalAssignedJobs", "createdOn", "runnerAssignTime", "queueTime",
]  # fmt: skip
MESSAGE_TYPES = [
    "RunnerScaleSetJobMessages", "JobAvailable", "JobAssigned", "JobStarted", "JobCompleted",
    "RunnerJobRequest", "JobCancellation", "BrokerMigration", "PipelineAgentJobRequest",
    "ForceTokenRefresh", "RunnerRefresh", "AgentRefresh", "RunnerRefreshConfig", "RunnerShutdown",
]  # fmt: skip

TEXT = st.text(max_size=12) | st.sampled_from(
    HOSTILE_URLS + TIMES + MESSAGE_TYPES + ["00:05:00", "1.02:03:04.5"]
)
SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | TEXT
KEYS = st.sampled_from(WIRE_KEYS) | st.text(max_size=8)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=6),
    max_leaves=30,
)


@st.composite
def deep_texts(draw: st.DrawFn) -> str:
    """A JSON text nested around the bound, or far past Python's stack."""
    depth = draw(
        st.sampled_from([MAX_JSON_DEPTH, MAX_JSON_DEPTH + 1, 999, 1000, 5000]) | st.integers(0, 3000)
    )
    opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}"), ('{"value":[', "]}")]))
    leaf = draw(st.sampled_from(["1", '"x"', "null", "[]", "{}"]))
    return opener * depth + leaf + closer * depth


TEMPLATES = [
    '{"id": 1, "name": %s}',
    '{"count": 1, "value": %s}',
    '{"count": 1, "value": [{"id": 1, "labels": %s}]}',
    '{"runners": %s}',
    '{"message": %s}',
    '{"typeName": "X", "message": "m", "extra": %s}',
    "[%s]",
]
TEXTS = st.one_of(
    JSON.map(json.dumps),
    deep_texts(),
    st.builds(lambda template, deep: template % deep, st.sampled_from(TEMPLATES), deep_texts()),
    st.text(max_size=40),
)
DOCUMENTS = st.one_of(
    TEXTS.map(lambda text: text.encode("utf-8", "surrogatepass")),
    TEXTS.map(lambda text: b"\xef\xbb\xbf" + text.encode("utf-8", "surrogatepass")),
    st.binary(max_size=80),
)


@attrs.frozen
class Deep:
    """A Python value nested `depth` times around `leaf`: built in the test, so a failure prints small."""

    depth: int
    kind: str
    leaf: Any = None

    def build(self) -> Any:
        value = self.leaf
        for _ in range(self.depth):
            value = [value] if self.kind == "list" else {"value": value}
        return value


DEEP_VALUES = st.builds(
    Deep, st.sampled_from([MAX_JSON_DEPTH, 1000, 5000]), st.sampled_from(["list", "dict"])
)


def realise(value: Any) -> Any:
    """`value` with every `Deep` built."""
    if isinstance(value, Deep):
        return value.build()
    if isinstance(value, dict):
        return {key: realise(item) for key, item in value.items()}
    if isinstance(value, list):
        return [realise(item) for item in value]
    return value


DEEP_WRAPPED = st.one_of(
    DEEP_VALUES,
    DEEP_VALUES.map(lambda deep: [deep]),
    st.builds(lambda key, deep: {key: {"value": deep}}, KEYS, DEEP_VALUES),
)
VALUES = st.one_of(
    JSON,
    DEEP_VALUES,
    st.dictionaries(KEYS, JSON | DEEP_VALUES, max_size=6),
    st.lists(JSON | DEEP_VALUES, max_size=3),
    st.dictionaries(KEYS, st.dictionaries(KEYS, DEEP_VALUES, max_size=2), max_size=2),
)

# ---------------------------------------------------------------- arbitrary replies

STATUSES = st.sampled_from(
    [200, 201, 202, 204, 302, 400, 401, 403, 404, 409, 422, 429, 500, 503]
) | st.integers(100, 599)
HEADER_NAMES = st.sampled_from(
    [
        "content-type", "content-encoding", "link", "retry-after", "x-ratelimit-remaining",
        "x-ratelimit-reset",
        "activityid", "x-github-request-id", "set-cookie", "location", "content-length",
    ]
) | st.from_regex(r"[A-Za-z0-9-]{1,12}", fullmatch=True)  # fmt: skip
HEADER_VALUES = st.sampled_from(
    [
        b"gzip", b"deflate", b"br", b"gzip, deflate", b"identity", b"application/json", b"text/plain",
        b"application/json; charset=utf-16", b"application/json; charset=nope", b"0", b"-1", b"1e400",
        b"nan", b"Mon, 01 Jan 0001 00:00:00 GMT", b"Fri, 31 Dec 9999 23:59:59 -2359",
        b"secondary rate limit", *(f'<{url}>; rel="next"'.encode() for url in HOSTILE_URLS),
    ]
) | st.binary(max_size=40)  # fmt: skip
HEADERS = st.lists(st.tuples(HEADER_NAMES.map(str.encode), HEADER_VALUES), max_size=6)


@attrs.frozen
class Reply:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def response(self) -> httpx.Response:
        # A stream, not content: httpx then decodes as it reads, as from a real server.
        return httpx.Response(self.status, headers=self.headers, stream=httpx.ByteStream(self.body))


REPLIES = st.builds(Reply, STATUSES, HEADERS, DOCUMENTS)


def _transport(target: Callable[[httpx.Request], httpx.Response | None]) -> httpx.MockTransport:
    """The registration exchange and the session as GitHub answers them; the rest from `target`."""

    def handle(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/actions/runners/registration-token"):
            return httpx.Response(201, json={"token": "REG", "expires_at": "2099-01-01T00:00:00Z"})
        if path.endswith("/actions/runner-registration"):
            return httpx.Response(200, json={"url": ADMIN, "token": admin_jwt(4_000_000_000)})
        if "/sessions" in path:
            return httpx.Response(204) if request.method == "DELETE" else httpx.Response(200, json=SESSION)
        answer = target(request)
        return answer if answer is not None else httpx.Response(404)

    return httpx.MockTransport(handle)


async def only_typed_errors(call: Callable[[], Awaitable[object]]) -> None:
    """Run `call`: a typed error is fine, anything else fails the test."""
    with contextlib.suppress(asc.ActionsScaleSetError):
        await call()


def _core(client: httpx.AsyncClient) -> HTTPCore:
    clock = FakeClock()
    return HTTPCore(client, sleep=clock.sleep, clock=clock, random=lambda: 0.0)


# ---------------------------------------------------------------- the clients


@CLIENT_PATHS
@given(reply=REPLIES, follow_redirects=st.booleans())
def test_scale_set_calls_raise_only_typed_errors(
    anyio_backend: str, reply: Reply, follow_redirects: bool
) -> None:
    async def main() -> None:
        transport = _transport(lambda request: reply.response())
        async with httpx.AsyncClient(transport=transport, follow_redirects=follow_redirects) as http_client:
            pat = asc.PersonalAccessToken("ghp_tok")
            async with asc.ScaleSetClient("https://github.com/acme", pat, http=_core(http_client)) as client:
                await only_typed_errors(lambda: client.get_scale_set_by_id(7))
                await only_typed_errors(client.list_scale_sets)

    anyio.run(main, backend=anyio_backend)


@CLIENT_PATHS
@given(reply=REPLIES)
def test_a_message_poll_raises_only_typed_errors(anyio_backend: str, reply: Reply) -> None:
    async def main() -> None:
        transport = _transport(lambda request: reply.response())
        async with httpx.AsyncClient(transport=transport) as http_client:
            pat = asc.PersonalAccessToken("ghp_tok")
            async with asc.ScaleSetClient("https://github.com/acme", pat, http=_core(http_client)) as client:
                with contextlib.suppress(asc.ActionsScaleSetError):
                    async with client.session(117, owner="fuzz") as session:
                        await only_typed_errors(lambda: session.get_message(0, max_capacity=5))

    anyio.run(main, backend=anyio_backend)


@CLIENT_PATHS
@given(reply=REPLIES, link=st.sampled_from(HOSTILE_URLS) | st.text(max_size=30))
def test_listing_runners_across_an_arbitrary_link_raises_only_typed_errors(
    anyio_backend: str, reply: Reply, link: str
) -> None:
    first = Reply(reply.status, [*reply.headers, (b"link", f'<{link}>; rel="next"'.encode())], reply.body)
    pages: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        pages.append(request)
        return first.response() if len(pages) == 1 else httpx.Response(200, json={"runners": []})

    async def main() -> None:
        async with httpx.AsyncClient(transport=_transport(answer)) as http_client:
            pat = asc.PersonalAccessToken("ghp_tok")
            async with asc.GitHubClient("https://github.com/acme", pat, http=_core(http_client)) as github:
                await only_typed_errors(github.list_runners)

    anyio.run(main, backend=anyio_backend)


# ---------------------------------------------------------------- the pure decoders


@PURE_PATHS
@given(
    status=st.integers(-5, 1000),
    headers=HEADERS,
    body=DOCUMENTS,
    now=st.floats(0, 1e11),
    unauthorized=st.sampled_from([AuthenticationError, MessageQueueTokenExpiredError]),
)
def test_error_from_response_always_returns_an_error(
    status: int, headers: list[tuple[bytes, bytes]], body: bytes, now: float, unauthorized: type[Any]
) -> None:
    error = error_from_response(
        method="GET",
        url="https://api.github.com/x",
        status_code=status,
        headers=httpx.Headers(headers),
        body=body,
        now=now,
        unauthorized=unauthorized,
    )
    assert isinstance(error, asc.HTTPStatusError)
    assert str(error)


MODEL_CLASSES = [
    cls
    for cls in (getattr(models, name) for name in models.__all__)
    if isinstance(cls, type) and attrs.has(cls) and cls is not models.ListEnvelope
] + [
    models.RunnerScaleSetList,
    models.RunnerGroupList,
    models.RunnerReferenceList,
    models.AcquirableJobList,
    models.Int64List,
    MessageEnvelope,
]
MESSAGES = st.fixed_dictionaries(
    {
        "messageId": st.integers() | JSON,
        "messageType": st.sampled_from(MESSAGE_TYPES) | st.text(max_size=8),
        "body": TEXTS | st.lists(st.dictionaries(KEYS, JSON, max_size=5), max_size=3).map(json.dumps),
    },
    optional={"statistics": VALUES, "iv": st.none() | st.text(max_size=4)},
)


@PURE_PATHS
@given(value=VALUES | MESSAGES, cls=st.sampled_from(MODEL_CLASSES))
def test_structure_raises_only_invalid_response_errors(value: Any, cls: type[Any]) -> None:
    with contextlib.suppress(asc.InvalidResponseError):
        models.structure(realise(value), cls)


def _b64(data: str | bytes) -> str:
    return base64.b64encode(data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data).decode()


@st.composite
def jit_blobs(draw: st.DrawFn) -> str | bytes | asc.Secret:
    """A blob broken in one layer: the outer base64, the outer JSON, a file, or a field of a file."""
    files: dict[str, Any] = {name: json.dumps(content) for name, content in JIT_FILES.items()}
    layer = draw(st.sampled_from(["blob", "outer", "file", "field"]))
    if layer == "blob":
        return draw(st.text(max_size=60) | st.binary(max_size=60))
    if layer == "outer":
        return _b64(draw(DOCUMENTS))
    if layer == "file":
        files[draw(st.sampled_from([*files, "x", "../x"]))] = draw(TEXTS)
    else:
        name = draw(st.sampled_from(list(JIT_FILES)))
        content = json.loads(files[name])
        target = content.get("Data", content) if draw(st.booleans()) else content
        target[draw(st.sampled_from([*target, "ServerUrlV2", "authorizationUrl"]) | KEYS)] = draw(
            JSON | st.sampled_from(HOSTILE_URLS)
        )
        files[name] = json.dumps(content)
    blob = _b64(json.dumps({name: _b64(text) for name, text in files.items()}))
    return asc.Secret(blob) if draw(st.booleans()) else blob


@PURE_PATHS
@given(blob=jit_blobs())
def test_jit_config_decode_raises_only_invalid_jit_config_errors(blob: str | bytes | asc.Secret) -> None:
    with contextlib.suppress(asc.InvalidJitConfigError):
        JitConfig.decode(blob)


MESSAGE_BODIES = st.one_of(
    TEXTS,
    st.fixed_dictionaries(
        {},
        optional={
            "runner_request_id": TEXT,
            "run_service_url": st.sampled_from(HOSTILE_URLS) | TEXT,
            "jobId": TEXT,
            "timeout": TEXT | JSON,
            "brokerBaseUrl": st.sampled_from(HOSTILE_URLS) | TEXT,
            "should_acknowledge": JSON,
        },
    ).map(json.dumps),
    st.just(json.dumps(JOB_MESSAGE)),
)


@PURE_PATHS
@given(
    payload=JSON
    | st.fixed_dictionaries(
        {
            "messageType": st.sampled_from(MESSAGE_TYPES) | st.text(max_size=8),
            "body": MESSAGE_BODIES,
        },
        optional={"messageId": JSON, "iv": st.none() | st.text(max_size=4)},
    )
)
def test_parse_message_raises_only_invalid_response_errors(payload: Any) -> None:
    with contextlib.suppress(asc.InvalidResponseError):
        parse_message(payload)


@st.composite
def job_messages(draw: st.DrawFn) -> Any:
    """The fixture job message with one field, at the top or one level down, replaced."""
    message = json.loads(json.dumps(JOB_MESSAGE))
    target = message
    if draw(st.booleans()):
        nested = [key for key, value in message.items() if isinstance(value, dict)]
        target = message[draw(st.sampled_from(nested))]
    value = draw(st.one_of(DEEP_WRAPPED, VALUES, st.sampled_from(HOSTILE_URLS)))
    target[draw(st.sampled_from(list(target)) | KEYS)] = value
    return message


@PURE_PATHS
@given(payload=VALUES | job_messages())
def test_parse_job_message_raises_only_invalid_response_errors(payload: Any) -> None:
    with contextlib.suppress(asc.InvalidResponseError):
        parse_job_message(realise(payload))


def test_the_fuzzed_paths_do_reach_their_success_cases() -> None:
    # Not only errors: unchanged fixtures decode, so the properties above test real decoders.
    assert parse_job_message(JOB_MESSAGE).job_id
    assert JitConfig.decode(_b64(json.dumps({n: _b64(json.dumps(c)) for n, c in JIT_FILES.items()})))
