"""JIT config decoding, encoding and writing (docs/protocol.md, "JIT configs")."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actions_scaleset import InvalidJitConfigError, Secret
from actions_scaleset.runner import JitConfig, RSAParameters, RunnerCredentials, RunnerSettings
from tests.runner.conftest import make_config
from tests.support import RUNNER_FIXTURES, SCALESET_FIXTURES, fixture_bytes, load_fixture

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey


def b64(data: bytes | str) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def blob_of(files: dict[str, Any]) -> str:
    outer = {
        name: b64(content if isinstance(content, bytes) else json.dumps(content))
        for name, content in files.items()
    }
    return b64(json.dumps(outer))


def fixture_files() -> dict[str, Any]:
    return {
        ".runner": load_fixture("jit_runner_file.json", RUNNER_FIXTURES),
        ".credentials": load_fixture("jit_credentials_file.json", RUNNER_FIXTURES),
        ".credentials_rsaparams": load_fixture("jit_credentials_rsaparams_file.json", RUNNER_FIXTURES),
    }


def test_the_encoded_fixture_decodes_with_string_typed_values() -> None:
    config = JitConfig.decode(fixture_bytes("jit_config_encoded.txt", RUNNER_FIXTURES).decode())

    assert config.runner == RunnerSettings(
        agent_id=6858,
        agent_name="scaleset-runner-x7k2p",
        pool_id=5,
        server_url="https://pipelinesghubeus22.actions.githubusercontent.com/SYNTHETICTENANT/",
        server_url_v2="https://broker.actions.githubusercontent.com/",
        use_v2_flow=True,
        github_url="https://github.com/example-org",
        work_folder="_work",
        ephemeral=True,
        disable_update=True,
    )
    assert config.runner.uses_broker
    assert config.credentials.client_id == "11111111-2222-3333-4444-555555555555"
    assert config.credentials.authorization_url.endswith("/66666666-7777-8888-9999-000000000000")
    assert config.credentials.require_fips_cryptography is True
    assert config.rsa_parameters is not None
    assert config.rsa_parameters.exponent == 65537


def test_the_outer_map_fixture_is_the_decoded_layer_of_the_encoded_fixture() -> None:
    outer = load_fixture("jit_config_outer_map.json", RUNNER_FIXTURES)
    config = JitConfig.decode(blob_of({name: base64.b64decode(value) for name, value in outer.items()}))
    expected = JitConfig.decode(fixture_bytes("jit_config_encoded.txt", RUNNER_FIXTURES).decode())

    assert config == expected
    for name, content in fixture_files().items():
        assert json.loads(config.files[name]) == content


def test_the_scale_set_fixture_decodes_with_native_values_and_camel_case_data() -> None:
    response = load_fixture("jit_config_response.json", SCALESET_FIXTURES)
    decoded = load_fixture("jit_config_decoded_example.json", SCALESET_FIXTURES)["decoded_files"]

    config = JitConfig.decode(response["encodedJITConfig"])

    assert config.runner.agent_id == decoded[".runner"]["AgentId"] == 6858
    assert config.runner.pool_id == 5
    assert config.runner.ephemeral is True
    assert config.runner.github_url is None  # absent in JIT configs (docs/protocol.md, "JIT configs")
    assert config.credentials.client_id == decoded[".credentials"]["Data"]["clientId"]
    assert config.credentials.require_fips_cryptography is False


def test_the_redacted_fixture_key_decodes_but_is_reported_as_unusable() -> None:
    config = JitConfig.decode(load_fixture("jit_config_response.json")["encodedJITConfig"])

    with pytest.raises(InvalidJitConfigError, match=r"`\.credentials_rsaparams` does not hold a valid RSA"):
        config.private_key()


@pytest.mark.parametrize(
    "name",
    [
        "jit_runner_file.json",
        "runner_file_written_by_config_sh.json",
        "runner_file_hosted_string_values.json",
    ],
)
def test_every_runner_file_fixture_parses(name: str) -> None:
    settings = RunnerSettings.from_json(load_fixture(name, RUNNER_FIXTURES))

    assert settings.agent_id in (6858, 100, 1000000225)
    assert settings.uses_broker


def test_the_hosted_runner_file_reads_string_booleans_and_camel_case_keys() -> None:
    settings = RunnerSettings.from_json(
        load_fixture("runner_file_hosted_string_values.json", RUNNER_FIXTURES)
    )

    assert settings.is_hosted_server is True
    assert settings.skip_session_recover is True
    assert settings.use_v2_flow is True  # `useV2Flow`: camelCase key, native bool
    assert settings.server_url == ""


@pytest.mark.parametrize("name", ["credentials_file_written_by_config_sh.json", "jit_credentials_file.json"])
def test_every_credentials_file_fixture_parses(name: str) -> None:
    credentials = RunnerCredentials.from_json(load_fixture(name, RUNNER_FIXTURES))

    assert credentials.scheme == "OAuth"
    assert credentials.client_id == "11111111-2222-3333-4444-555555555555"
    assert credentials.token_url == credentials.authorization_url
    assert credentials.require_fips_cryptography is True


def test_oauth_endpoint_url_is_where_the_form_goes() -> None:
    credentials = RunnerCredentials.from_json(
        {
            "scheme": "OAuth",
            "data": {"CLIENTID": "c", "authorizationurl": "https://a/", "oauthEndpointUrl": "https://b/"},
        }
    )

    assert credentials.token_url == "https://b/"
    assert credentials.authorization_url == "https://a/"
    assert credentials.require_fips_cryptography is False  # missing means false at runtime


@pytest.mark.parametrize("value", ["true", "True", "false", ""])
def test_a_present_enable_auth_migration_by_default_key_turns_migration_on_whatever_its_value(
    value: str,
) -> None:
    # Runner.cs ExecuteCommand only asks `Data.ContainsKey("EnableAuthMigrationByDefault")`.
    data = {"clientId": "c", "authorizationUrl": "https://a/", "authorizationUrlV2": "https://a2/"}
    credentials = RunnerCredentials.from_json(
        {"Scheme": "OAuth", "Data": data | {"EnableAuthMigrationByDefault": value}}
    )

    assert credentials.enable_auth_migration_by_default is True
    assert credentials.token_url_v2 == "https://a2/"


def test_without_the_enable_auth_migration_by_default_key_migration_stays_off() -> None:
    data = {"clientId": "c", "authorizationUrl": "https://a/", "authorizationUrlV2": "https://a2/"}
    credentials = RunnerCredentials.from_json({"Scheme": "OAuth", "Data": data})

    assert credentials.enable_auth_migration_by_default is False


def test_an_access_token_scheme_needs_no_key_and_hides_the_token() -> None:
    files = {".runner": {"AgentId": 1, "ServerUrlV2": "https://b/", "UseV2Flow": True}}
    files[".credentials"] = {"Scheme": "OAuthAccessToken", "Data": {"token": "very-secret-value"}}

    config = JitConfig.decode(blob_of(files))

    assert config.credentials.access_token == Secret("very-secret-value")
    assert "very-secret-value" not in repr(config)
    assert "very-secret-value" not in repr(config.credentials)


def test_a_utf8_bom_is_dropped_from_each_file() -> None:
    files = fixture_files()
    files[".runner"] = b"\xef\xbb\xbf" + json.dumps(files[".runner"]).encode()

    assert JitConfig.decode(blob_of(files)).runner.agent_id == 6858


def test_the_blob_may_come_as_bytes_or_secret_with_whitespace() -> None:
    blob = fixture_bytes("jit_config_encoded.txt", RUNNER_FIXTURES)

    assert JitConfig.decode(blob + b"\n") == JitConfig.decode(Secret(blob.decode()))


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        ("", "is empty"),
        ("!!!not base64!!!", r"not valid base64 \(outer layer\)"),
        (b64("not json"), "outer layer is not valid JSON"),
        (b64("[1, 2]"), "outer layer is not a JSON object"),
        (b64(json.dumps({".runner": 5})), "entry `.runner` is not a base64 string"),
        (b64(json.dumps({".runner": "%%%"})), "file `.runner` is not valid base64"),
        (b64(json.dumps({"../evil": b64("{}")})), "not a plain file name"),
    ],
)
def test_a_bad_envelope_says_which_layer_is_wrong(blob: str, message: str) -> None:
    with pytest.raises(InvalidJitConfigError, match=message):
        JitConfig.decode(blob)


def _with(file: str, content: Any) -> str:
    files = fixture_files()
    files[file] = content
    return blob_of(files)


def _without(file: str) -> str:
    files = fixture_files()
    del files[file]
    return blob_of(files)


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (_without(".runner"), "no `.runner` file"),
        (_without(".credentials"), "no `.credentials` file"),
        (
            _without(".credentials_rsaparams"),
            "no `.credentials_rsaparams` file, which the OAuth scheme needs",
        ),
        (_with(".runner", b"{nope"), "`.runner` is not valid JSON"),
        (_with(".runner", [1]), "`.runner` is not a JSON object"),
        (_with(".runner", {"AgentId": "abc"}), "`.runner` field `AgentId` should be an integer"),
        (_with(".runner", {"Ephemeral": "maybe"}), "`.runner` field `Ephemeral` should be a boolean"),
        (_with(".runner", {"ServerUrl": {"a": 1}}), "`.runner` field `ServerUrl` should be a string"),
        (_with(".credentials", {"Data": {}}), "`.credentials` has no `Scheme`"),
        (_with(".credentials", {"Scheme": "Basic"}), "scheme 'Basic'"),
        (_with(".credentials", {"Scheme": "OAuth", "Data": {"authorizationUrl": "u"}}), "no `Data.clientId`"),
        (_with(".credentials", {"Scheme": "OAuth", "Data": {"clientId": "c"}}), "no `Data.authorizationUrl`"),
        (
            _with(".credentials", {"Scheme": "OAuth", "Data": []}),
            "`.credentials` `Data` is not a JSON object",
        ),
        (_with(".credentials_rsaparams", {"d": "AQAB"}), "`.credentials_rsaparams` has no `exponent`"),
        (
            _with(".credentials_rsaparams", {**fixture_files()[".credentials_rsaparams"], "modulus": "*"}),
            "`.credentials_rsaparams` field `modulus` is not valid base64",
        ),
    ],
)
def test_a_bad_file_says_which_file_and_field_is_wrong(blob: str, message: str) -> None:
    with pytest.raises(InvalidJitConfigError, match=message):
        JitConfig.decode(blob)


def test_errors_never_quote_the_blob_or_the_key(rsa_key: RSAPrivateKey) -> None:
    config = make_config(rsa_key)
    params = json.loads(config.files[".credentials_rsaparams"])
    params["d"] = params["d"][:-4] + "****"
    blob = blob_of({**{n: json.loads(v) for n, v in config.files.items()}, ".credentials_rsaparams": params})

    with pytest.raises(InvalidJitConfigError) as caught:
        JitConfig.decode(blob)

    text = str(caught.value)
    assert params["p"] not in text
    assert blob[:40] not in text


def test_encode_round_trips_the_files_exactly() -> None:
    blob = fixture_bytes("jit_config_encoded.txt", RUNNER_FIXTURES).decode().strip()
    config = JitConfig.decode(blob)

    again = JitConfig.decode(config.encode())

    assert again == config
    assert again.files == config.files
    assert config.encode().get_secret_value() == blob  # the fixture was written compactly


def test_a_created_config_round_trips_with_its_key(rsa_key: RSAPrivateKey) -> None:
    config = make_config(rsa_key, fips=False)

    again = JitConfig.decode(config.encode())

    assert again.runner == config.runner
    assert again.credentials == config.credentials
    assert again.private_key().private_numbers() == rsa_key.private_numbers()


def test_repr_hides_the_key_and_the_blob(rsa_key: RSAPrivateKey) -> None:
    config = make_config(rsa_key)
    numbers = rsa_key.private_numbers()

    text = repr(config) + repr(config.rsa_parameters) + repr(config.encode()) + str(config.encode())

    assert "scaleset-runner-x7k2p" in text
    assert str(numbers.d) not in text
    assert config.encode().get_secret_value()[:20] not in text
    assert config.files[".credentials_rsaparams"].decode()[:30] not in text


def test_write_puts_every_file_in_the_root_with_mode_0600(tmp_path: Path, rsa_key: RSAPrivateKey) -> None:
    config = make_config(rsa_key)
    (tmp_path / ".runner").write_text("old")
    (tmp_path / ".runner").chmod(0o644)

    written = config.write(tmp_path)

    assert sorted(p.name for p in written) == [".credentials", ".credentials_rsaparams", ".runner"]
    for path in written:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path.read_bytes() == config.files[path.name]
    assert JitConfig.from_files({p.name: p.read_bytes() for p in written}) == config


def test_rsa_parameters_round_trip_through_dotnet_json(rsa_key: RSAPrivateKey) -> None:
    params = RSAParameters.from_private_key(rsa_key)
    wire = params.to_json()

    assert sorted(wire) == ["d", "dp", "dq", "exponent", "inverseQ", "modulus", "p", "q"]
    assert wire["exponent"] == "AQAB"
    assert len(base64.b64decode(wire["modulus"])) == 256
    assert len(base64.b64decode(wire["p"])) == 128
    assert RSAParameters.from_json(wire).private_key().private_numbers() == rsa_key.private_numbers()


def test_missing_crt_values_are_derived(rsa_key: RSAPrivateKey) -> None:
    wire = RSAParameters.from_private_key(rsa_key).to_json()
    for name in ("dp", "dq", "inverseQ"):
        del wire[name]

    assert RSAParameters.from_json(wire).private_key().private_numbers() == rsa_key.private_numbers()


booleans = st.sampled_from([True, False, "True", "False", "true", "false", " TRUE ", 1, 0])
integers = st.integers(min_value=0, max_value=2**63 - 1)


@given(
    agent_id=integers,
    pool_id=integers,
    ephemeral=booleans,
    v2=booleans,
    as_string=st.booleans(),
    casing=st.sampled_from([str, str.lower, str.upper, lambda s: s[0].lower() + s[1:]]),
)
def test_runner_settings_accept_any_casing_and_string_or_native_values(
    agent_id: int, pool_id: int, ephemeral: Any, v2: Any, as_string: bool, casing: Any
) -> None:
    raw = {
        "AgentId": str(agent_id) if as_string else agent_id,
        "PoolId": str(pool_id) if as_string else pool_id,
        "Ephemeral": ephemeral,
        "UseV2Flow": v2,
        "ServerUrlV2": "https://broker/",
    }

    settings = RunnerSettings.from_json({casing(key): value for key, value in raw.items()})

    def truth(value: Any) -> bool:
        return value is True or value == 1 or (isinstance(value, str) and value.strip().lower() == "true")

    assert settings.agent_id == agent_id
    assert settings.pool_id == pool_id
    assert settings.ephemeral is truth(ephemeral)
    assert settings.uses_broker is truth(v2)
    assert RunnerSettings.from_json(settings.to_json()) == settings
