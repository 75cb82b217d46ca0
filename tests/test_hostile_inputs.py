"""What a hostile server or a careless caller sends comes out as a typed error (issue 10, point 1).

Each test names one input: JSON nested deeper than Python's stack, a body its
`Content-Encoding` cannot decode, a redirect loop, a server-given URL no request can be
sent to, text HTTP cannot carry. `tests/test_decoding_fuzz.py` feeds the same paths
arbitrary input.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest
import respx

import actions_scaleset as asc
from actions_scaleset._http import NO_RETRY, REST_RETRY, HTTPCore
from actions_scaleset.models import MAX_JSON_DEPTH, RunnerScaleSetMessage, load_json, structure
from actions_scaleset.runner import JitConfig
from actions_scaleset.runner._jobmessage import parse_job_message
from actions_scaleset.runner._messages import parse_message
from tests.scaleset_mocks import mock_exchange
from tests.support import RUNNER_FIXTURES, FakeClock, load_fixture

pytestmark = pytest.mark.anyio

API = "https://api.github.com"
BASE = "https://pipelines.actions.example/tenant-1/_apis"
URL = "https://pipelines.example/_apis/x"
DEEP = "[" * 1000 + "]" * 1000  # about 2 KB: Python's decoder raises RecursionError on it
BAD_URLS = [
    "http://[::1/x",
    "https://broker.example/a\x00b",
    "https://☃.com/",
    "https://xn--n3h.com/",
    "ftp://files.example/",
    "/relative/only",
    "https://broker.example:99999/",
]


def _core(clock: FakeClock, client: httpx.AsyncClient | None = None) -> HTTPCore:
    return HTTPCore(client, sleep=clock.sleep, clock=clock, random=lambda: 0.0)


def _scale_set_client(clock: FakeClock) -> asc.ScaleSetClient:
    return asc.ScaleSetClient(
        "https://github.com/acme", asc.PersonalAccessToken("ghp_tok"), http=_core(clock)
    )


def _github(clock: FakeClock) -> asc.GitHubClient:
    return asc.GitHubClient("https://github.com/acme", asc.PersonalAccessToken("ghp_tok"), http=_core(clock))


def _nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


def _b64(data: str | bytes) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def _jit_files() -> dict[str, Any]:
    return {
        ".runner": load_fixture("jit_runner_file.json", RUNNER_FIXTURES),
        ".credentials": load_fixture("jit_credentials_file.json", RUNNER_FIXTURES),
        ".credentials_rsaparams": load_fixture("jit_credentials_rsaparams_file.json", RUNNER_FIXTURES),
    }


def _jit_blob(files: dict[str, Any]) -> str:
    outer = {name: _b64(text if isinstance(text, str) else json.dumps(text)) for name, text in files.items()}
    return _b64(json.dumps(outer))


def _job_message(**changes: Any) -> dict[str, Any]:
    return {**load_fixture("run_acquirejob_response_job_message.json", RUNNER_FIXTURES), **changes}


# ---------------------------------------------------------------- JSON nested too deeply


def test_a_document_nested_as_deep_as_the_bound_decodes_and_one_level_more_is_refused() -> None:
    deepest = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    assert json.dumps(load_json(deepest), separators=(",", ":")) == deepest
    with pytest.raises(ValueError, match=f"nested deeper than {MAX_JSON_DEPTH} levels"):
        load_json("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1))


@respx.mock
async def test_a_response_nested_1000_deep_is_an_invalid_response_that_says_so(clock: FakeClock) -> None:
    mock_exchange(respx.mock, exp=clock.now + 3600)
    respx.get(f"{BASE}/runtime/runnerscalesets/7").mock(return_value=httpx.Response(200, content=DEEP))
    async with _scale_set_client(clock) as client:
        with pytest.raises(asc.InvalidResponseError, match="nested deeper than") as info:
            await client.get_scale_set_by_id(7)
    assert info.value.status_code == 200


@respx.mock
async def test_an_error_body_nested_1000_deep_still_gives_the_status_error(clock: FakeClock) -> None:
    respx.get(URL).mock(return_value=httpx.Response(404, content=DEEP))
    with pytest.raises(asc.NotFoundError):
        await _core(clock).request("GET", URL, policy=NO_RETRY)


def test_error_from_response_returns_for_a_body_nested_1000_deep() -> None:
    error = asc.errors.error_from_response(
        method="GET", url=URL, status_code=500, headers=httpx.Headers(), body=DEEP.encode(), now=0.0
    )
    assert isinstance(error, asc.ServerError)


def test_a_message_whose_body_nests_1000_deep_is_an_invalid_response() -> None:
    payload = {"messageId": 1, "messageType": "RunnerScaleSetJobMessages", "body": DEEP}
    with pytest.raises(asc.InvalidResponseError, match="nested deeper than"):
        structure(payload, RunnerScaleSetMessage)


def test_a_jit_config_nested_1000_deep_is_an_invalid_jit_config_that_says_so() -> None:
    with pytest.raises(asc.InvalidJitConfigError, match=r"outer layer is not valid JSON .*nested deeper"):
        JitConfig.decode(_b64(DEEP))


def test_a_jit_config_file_nested_1000_deep_names_the_file() -> None:
    files = {**_jit_files(), ".runner": DEEP}
    with pytest.raises(asc.InvalidJitConfigError, match=r"`\.runner` is not valid JSON .*nested deeper"):
        JitConfig.decode(_jit_blob(files))


@pytest.mark.parametrize("message_type", ["JobCancellation", "BrokerMigration", "PipelineAgentJobRequest"])
def test_a_runner_message_body_nested_1000_deep_is_an_invalid_response(message_type: str) -> None:
    with pytest.raises(asc.InvalidResponseError, match=f"body of a {message_type} message .*nested deeper"):
        parse_message({"messageType": message_type, "messageId": 1, "body": DEEP})


def test_a_job_message_holding_a_value_deeper_than_the_stack_is_an_invalid_response() -> None:
    with pytest.raises(asc.InvalidResponseError, match="nested too deeply"):
        parse_job_message(_job_message(fileTable=[_nested(5000)]))


# ---------------------------------------------------------------- replies that cannot be read


async def test_a_body_its_content_encoding_cannot_decode_is_an_invalid_response_sent_once(
    clock: FakeClock,
) -> None:
    sent: list[httpx.Request] = []

    def corrupt(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        headers = {"Content-Encoding": "gzip", "ActivityId": "a-1"}
        return httpx.Response(200, headers=headers, stream=httpx.ByteStream(b"this is not gzip"))

    async with httpx.AsyncClient(transport=httpx.MockTransport(corrupt)) as client:
        with pytest.raises(asc.InvalidResponseError, match="Content-Encoding 'gzip'") as info:
            await _core(clock, client).request("GET", URL, policy=REST_RETRY)
    assert (info.value.status_code, info.value.activity_id) == (200, "a-1")
    assert len(sent) == 1  # the same reply would come again: not retried, as Go does not


async def test_a_redirect_loop_through_a_client_that_follows_redirects_is_an_invalid_response(
    clock: FakeClock,
) -> None:
    def loop(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"Location": str(request.url)})

    async with httpx.AsyncClient(transport=httpx.MockTransport(loop), follow_redirects=True) as client:
        with pytest.raises(asc.InvalidResponseError, match="redirected more than 20 times"):
            await _core(clock, client).request("GET", URL, policy=REST_RETRY)
    assert clock.slept == []


# ---------------------------------------------------------------- URLs no request can go to


@pytest.mark.parametrize("url", BAD_URLS)
async def test_a_url_no_request_can_go_to_is_a_network_error_before_anything_is_sent(
    clock: FakeClock, url: str
) -> None:
    sent: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200)

    transport = httpx.MockTransport(record)
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(asc.NetworkError, match="the URL cannot be used"):
            await _core(clock, client).request("GET", url, policy=REST_RETRY)
    assert sent == []
    assert clock.slept == []


@pytest.mark.parametrize("url", BAD_URLS)
@respx.mock
async def test_an_unusable_next_link_is_an_invalid_response_when_the_page_arrives(
    clock: FakeClock, url: str
) -> None:
    link = f'<{url}>; rel="next"'.encode()
    first = respx.get(f"{API}/orgs/acme/actions/runners").mock(
        return_value=httpx.Response(200, headers=[(b"link", link)], json={"runners": []})
    )
    async with _github(clock) as github:
        with pytest.raises(asc.InvalidResponseError, match="next page in the Link header cannot be used"):
            await github.list_runners()
    assert first.call_count == 1


@pytest.mark.parametrize("url", BAD_URLS)
def test_a_runner_job_request_with_an_unusable_run_service_url_is_refused_when_it_arrives(url: str) -> None:
    body = json.dumps({"runner_request_id": "r-1", "run_service_url": url})
    with pytest.raises(asc.InvalidResponseError, match="`run_service_url` of a RunnerJobRequest message"):
        parse_message({"messageType": "RunnerJobRequest", "messageId": 1, "body": body})


@pytest.mark.parametrize("url", BAD_URLS)
def test_a_broker_migration_to_an_unusable_url_is_refused_when_it_arrives(url: str) -> None:
    body = json.dumps({"brokerBaseUrl": url})
    with pytest.raises(asc.InvalidResponseError, match="`brokerBaseUrl` of a BrokerMigration message"):
        parse_message({"messageType": "BrokerMigration", "body": body})


@pytest.mark.parametrize("url", BAD_URLS)
def test_a_job_message_with_an_unusable_run_service_url_is_refused_when_it_arrives(url: str) -> None:
    message = _job_message()
    endpoint = next(e for e in message["resources"]["endpoints"] if e["name"] == "SystemVssConnection")
    endpoint["url"] = url
    with pytest.raises(asc.InvalidResponseError, match="`SystemVssConnection` endpoint URL cannot be used"):
        parse_job_message(message)


@pytest.mark.parametrize("url", BAD_URLS)
def test_a_job_message_with_an_unusable_results_url_is_refused_when_it_arrives(url: str) -> None:
    message = _job_message()
    message["variables"]["system.github.results_endpoint"]["value"] = url
    with pytest.raises(asc.InvalidResponseError, match="results service URL cannot be used"):
        parse_job_message(message)


@pytest.mark.parametrize(
    ("file", "field"), [(".runner", "ServerUrlV2"), (".credentials", "authorizationUrl")]
)
def test_a_jit_config_with_an_unusable_service_url_names_the_field(file: str, field: str) -> None:
    files = _jit_files()
    target = files[file] if file == ".runner" else files[file]["Data"]
    key = next(k for k in target if k.lower() == field.lower())
    target[key] = "http://[::1/x"
    with pytest.raises(asc.InvalidJitConfigError, match=f"`{key}` cannot be used"):
        JitConfig.decode(_jit_blob(files))


# ---------------------------------------------------------------- text HTTP cannot carry


@respx.mock
async def test_a_runner_name_with_a_lone_surrogate_is_a_configuration_error_naming_the_field(
    clock: FakeClock,
) -> None:
    route = respx.post(f"{API}/orgs/acme/actions/runners/generate-jitconfig")
    async with _github(clock) as github:
        with pytest.raises(
            asc.ConfigurationError, match=r"`name` in the JSON body .* lone surrogate U\+D800"
        ):
            await github.generate_jit_config("runner-\ud800")
    assert route.call_count == 0


async def test_the_error_for_an_unencodable_body_never_shows_the_other_values(clock: FakeClock) -> None:
    body = {"token": "ghp_0123456789abcdefghij", "labels": ["ok", "bad\udfff"]}
    with pytest.raises(asc.ConfigurationError, match=r"`labels\[1\]`") as info:
        await _core(clock).request("POST", URL, policy=NO_RETRY, json=body)
    assert "ghp_" not in str(info.value)
    assert "bad" not in str(info.value)


async def test_a_query_parameter_with_a_lone_surrogate_is_a_configuration_error(clock: FakeClock) -> None:
    with pytest.raises(asc.ConfigurationError, match="query parameter holds a lone surrogate"):
        await _core(clock).request("GET", URL, policy=NO_RETRY, params={"name": "r\ud800"})


async def test_a_header_that_is_not_ascii_is_a_configuration_error_that_hides_it(clock: FakeClock) -> None:
    with pytest.raises(
        asc.ConfigurationError, match="a header or form field holds text HTTP cannot carry"
    ) as info:
        await _core(clock).request("GET", URL, policy=NO_RETRY, headers={"X-Secret": "sécret-value"})
    assert "sécret" not in str(info.value)


@respx.mock
async def test_a_token_with_a_lone_surrogate_is_a_configuration_error_that_hides_it(clock: FakeClock) -> None:
    route = respx.post(f"{API}/orgs/acme/actions/runners/registration-token")
    github = asc.GitHubClient(
        "https://github.com/acme", asc.PersonalAccessToken("ghp_abc\ud800def"), http=_core(clock)
    )
    async with github:
        with pytest.raises(asc.ConfigurationError, match="a credential or header") as info:
            await github.create_registration_token()
    assert "ghp_abc" not in str(info.value)
    assert route.call_count == 0


async def test_a_bad_character_in_a_url_on_an_origin_already_used_is_still_a_typed_error() -> None:
    async with httpx.AsyncClient(transport=httpx.MockTransport(lambda request: httpx.Response(200))) as http:
        core = HTTPCore(http)
        await core.request("GET", "https://api.example/ok", policy=NO_RETRY)  # the origin is now known
        with pytest.raises(asc.NetworkError, match="cannot be used"):
            await core.request("GET", "https://api.example/a\x00b", policy=NO_RETRY)
