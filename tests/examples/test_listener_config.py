"""examples/listener: `config.parse` (flags, environment, TOML) and `logs.configure`."""

from __future__ import annotations

import datetime
import io
import json
import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID
from examples.listener import config, logs
from examples.listener.settings import (
    DEFAULT_DOCKER_IMAGE,
    ProvisionerSettings,
    ScaleSetSettings,
    Settings,
    UsageError,
)

import actions_scaleset as asc
from tests import keys

URL = "https://github.com/acme"
BASE = ("--url", URL, "--token", "ghp_secret", "--scale-set", "linux", "--runner-command", "./run.sh")
"""Everything a real (not simulated) run needs."""


def parse(*argv: str, env: Mapping[str, str] | None = None) -> Settings:
    return config.parse(argv, {} if env is None else env)


def usage_error(*argv: str, env: Mapping[str, str] | None = None) -> str:
    with pytest.raises(UsageError) as caught:
        parse(*argv, env=env)
    message = str(caught.value)
    assert "\n" not in message
    assert message.strip() == message
    assert message
    return message


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def ca_pem() -> str:
    """A self-signed CA certificate, made for this test run."""
    key = keys.rsa_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "listener test CA")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


# --- what a valid command line gives -------------------------------------------------------------


def test_a_minimal_command_line_takes_the_defaults() -> None:
    settings = parse(*BASE)
    assert settings.url == URL
    assert isinstance(settings.credentials, asc.PersonalAccessToken)
    assert settings.credentials.token.get_secret_value() == "ghp_secret"
    assert settings.scale_sets == (
        ScaleSetSettings(name="linux", provisioner=ProvisionerSettings(runner_command="./run.sh")),
    )
    assert (settings.ca_file, settings.metrics_addr) == (None, None)
    assert (settings.log_level, settings.log_format, settings.shutdown_timeout) == ("info", "text", 30.0)
    assert settings.state_dir == Path(".listener-state")
    assert (settings.simulate, settings.chaos, settings.jobs) == (False, False, 40)


def test_every_setting_has_an_environment_variable(tmp_path: Path) -> None:
    env = {
        "GITHUB_CONFIG_URL": "https://github.com/acme/widgets",
        "GITHUB_TOKEN": "ghp_env",
        "LISTENER_SCALE_SET": "arm",
        "LISTENER_RUNNER_GROUP": "builders",
        "LISTENER_LABELS": "linux, arm64,,linux",
        "LISTENER_MIN_RUNNERS": "1",
        "LISTENER_MAX_RUNNERS": "3",
        "LISTENER_PROVISIONER": "Docker",
        "LISTENER_RUNNER_COMMAND": "/home/runner/run.sh --once",
        "LISTENER_DOCKER_IMAGE": "example.com/runner:2",
        "DOCKER_HOST": "unix:///run/user/1000/docker.sock",
        "LISTENER_WORK_FOLDER": "/work",
        "LISTENER_CA_FILE": str(write(tmp_path / "ca.pem", ca_pem())),
        "LISTENER_METRICS_ADDR": "127.0.0.1:9100",
        "LISTENER_LOG_LEVEL": "DEBUG",
        "LISTENER_LOG_FORMAT": "json",
        "LISTENER_SHUTDOWN_TIMEOUT": "2.5",
        "LISTENER_STATE_DIR": str(tmp_path / "state"),
    }
    settings = parse(env=env)
    assert settings.url == "https://github.com/acme/widgets"
    assert settings.scale_sets == (
        ScaleSetSettings(
            name="arm",
            runner_group="builders",
            labels=("linux", "arm64"),
            min_runners=1,
            max_runners=3,
            provisioner=ProvisionerSettings(
                kind="docker",
                runner_command="/home/runner/run.sh --once",
                docker_image="example.com/runner:2",
                docker_host="unix:///run/user/1000/docker.sock",
                work_folder="/work",
            ),
        ),
    )
    assert settings.ca_file == tmp_path / "ca.pem"
    assert settings.metrics_addr == ("127.0.0.1", 9100)
    assert (settings.log_level, settings.log_format, settings.shutdown_timeout) == ("debug", "json", 2.5)
    assert settings.state_dir == tmp_path / "state"


def test_an_empty_variable_counts_as_unset() -> None:
    assert "no GitHub credentials" in usage_error(*BASE[:2], *BASE[4:], env={"GITHUB_TOKEN": ""})
    assert parse(*BASE, env={"LISTENER_MAX_RUNNERS": "  "}).scale_sets[0].max_runners == 10


@pytest.mark.parametrize(
    ("flag", "env", "file", "expected"),
    [
        ("9", "8", "7", 9),
        (None, "8", "7", 8),
        (None, None, "7", 7),
        (None, None, None, 10),
        ("9", None, "7", 9),
    ],
)
def test_a_flag_beats_its_variable_which_beats_the_file_which_beats_the_default(
    tmp_path: Path, flag: str | None, env: str | None, file: str | None, expected: int
) -> None:
    toml = write(tmp_path / "listener.toml", "" if file is None else f"max_runners = {file}\n")
    argv = [*BASE, "--config", str(toml), *(["--max-runners", flag] if flag else [])]
    settings = parse(*argv, env={"LISTENER_MAX_RUNNERS": env} if env else {})
    assert settings.scale_sets[0].max_runners == expected


def test_the_config_file_itself_can_come_from_the_environment(tmp_path: Path) -> None:
    toml = write(tmp_path / "listener.toml", 'log_level = "warning"\n')
    assert parse(*BASE, env={"LISTENER_CONFIG": str(toml)}).log_level == "warning"


def test_a_toml_file_serves_several_scale_sets_with_their_own_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    etc = tmp_path / "etc"
    write(etc / "keys" / "app.pem", keys.pem())
    write(etc / "ca.pem", ca_pem())
    toml = write(
        etc / "listener.toml",
        """
url = "https://github.com/enterprises/big"
app_client_id = "Iv1.0123abcd"
app_installation_id = 42
app_private_key_file = "keys/app.pem"
ca_file = "ca.pem"
state_dir = "state"
labels = ["self-hosted", "linux"]
min_runners = 1
max_runners = 5
runner_command = "./run.sh"
log_format = "json"
shutdown_timeout = 10
metrics_addr = ":9100"

[[scale_set]]
name = "small"

[[scale_set]]
name = "gpu"
runner_group = "gpu-runners"
labels = "gpu,cuda"
max_runners = 2
provisioner = "docker"
docker_image = "example.com/gpu-runner:1"
work_folder = "/scratch"
""",
    )
    monkeypatch.chdir(tmp_path)  # relative paths in the file start at the file, not here
    settings = parse("--config", "etc/listener.toml", "--min-runners", "0")

    assert settings.url == "https://github.com/enterprises/big"
    assert isinstance(settings.credentials, asc.GitHubApp)
    assert (settings.credentials.issuer, settings.credentials.installation_id) == ("Iv1.0123abcd", 42)
    assert settings.ca_file == etc.absolute() / "ca.pem"
    assert settings.state_dir == etc.absolute() / "state"
    assert (settings.log_format, settings.shutdown_timeout, settings.metrics_addr) == (
        "json",
        10.0,
        ("0.0.0.0", 9100),
    )
    small, gpu = settings.scale_sets
    assert small == ScaleSetSettings(
        name="small",
        labels=("self-hosted", "linux"),
        min_runners=0,  # the flag overrides the file's top level
        max_runners=5,
        provisioner=ProvisionerSettings(runner_command="./run.sh"),
    )
    assert gpu == ScaleSetSettings(
        name="gpu",
        runner_group="gpu-runners",
        labels=("gpu", "cuda"),
        min_runners=0,
        max_runners=2,
        provisioner=ProvisionerSettings(
            kind="docker",
            runner_command="./run.sh",
            docker_image="example.com/gpu-runner:1",
            work_folder="/scratch",
        ),
    )
    assert toml.exists()


def test_a_table_s_own_key_wins_over_a_flag(tmp_path: Path) -> None:
    toml = write(
        tmp_path / "listener.toml",
        '[[scale_set]]\nname = "a"\nmax_runners = 3\n\n[[scale_set]]\nname = "b"\n',
    )
    argv = ["--url", URL, "--token", "t", "--runner-command", "run", "--max-runners", "20"]
    a, b = parse(*argv, "--config", str(toml)).scale_sets
    assert (a.max_runners, b.max_runners) == (3, 20)


def test_a_github_app_from_the_environment(tmp_path: Path) -> None:
    key = write(tmp_path / "app.pem", keys.pkcs8_pem())
    env = {"GITHUB_APP_ID": "123", "GITHUB_APP_PRIVATE_KEY_FILE": str(key)}
    app = parse(*BASE[:2], *BASE[4:], env=env).credentials
    assert isinstance(app, asc.GitHubApp)
    assert (app.issuer, app.installation_id) == ("123", None)

    env = {"GITHUB_APP_CLIENT_ID": "Iv1.x", "GITHUB_APP_PRIVATE_KEY": keys.pem().replace("\n", "\\n")}
    app = parse(*BASE[:2], *BASE[4:], env=env).credentials
    assert isinstance(app, asc.GitHubApp)
    assert app.issuer == "Iv1.x"


def test_the_pem_in_the_environment_beats_a_key_file_named_in_the_config(tmp_path: Path) -> None:
    toml = write(tmp_path / "listener.toml", 'app_id = 1\napp_private_key_file = "missing.pem"\n')
    settings = parse(*BASE[:2], *BASE[4:], "--config", str(toml), env={"GITHUB_APP_PRIVATE_KEY": keys.pem()})
    assert isinstance(settings.credentials, asc.GitHubApp)


def test_simulate_needs_no_url_or_credentials_and_ignores_them() -> None:
    settings = parse("--simulate", "--url", "not a url", "--chaos", "--jobs", "5")
    assert (settings.url, settings.credentials) == (None, None)
    assert (settings.simulate, settings.chaos, settings.jobs) == (True, True, 5)
    assert settings.scale_sets == (
        ScaleSetSettings(name="simulated", provisioner=ProvisionerSettings(kind="simulate")),
    )
    assert parse(env={"LISTENER_SIMULATE": "yes", "LISTENER_SCALE_SET": "demo"}).scale_sets[0].name == "demo"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("127.0.0.1:9100", ("127.0.0.1", 9100)),
        (":9100", ("0.0.0.0", 9100)),
        ("[::1]:9100", ("::1", 9100)),
        ("metrics.internal:0", ("metrics.internal", 0)),
        ("localhost:65535", ("localhost", 65535)),
    ],
)
def test_metrics_addresses(given: str, expected: tuple[str, int]) -> None:
    assert parse("--simulate", "--metrics-addr", given).metrics_addr == expected


def test_docker_host_is_checked_only_for_the_docker_provisioner() -> None:
    env = {"DOCKER_HOST": "tcp://10.0.0.1:2375"}
    assert parse(*BASE, env=env).scale_sets[0].provisioner.docker_host == "unix:///var/run/docker.sock"
    assert "unix://" in usage_error(*BASE, "--provisioner", "docker", env=env)
    settings = parse(*BASE[:6], "--provisioner", "docker")
    assert settings.scale_sets[0].provisioner == ProvisionerSettings(
        kind="docker", docker_image=DEFAULT_DOCKER_IMAGE
    )


def test_the_kubernetes_settings_from_flags_variables_and_a_file(tmp_path: Path) -> None:
    kubeconfig = write(tmp_path / "kube" / "config", "apiVersion: v1\n")
    template = write(tmp_path / "pod.yaml", "spec:\n  nodeSelector: {pool: runners}\n")
    flags = ("--provisioner", "kubernetes", "--namespace", "ci", "--pod-template", str(template))
    settings = parse(*BASE[:6], *flags, env={"KUBECONFIG": str(kubeconfig)})
    assert settings.scale_sets[0].provisioner == ProvisionerSettings(
        kind="kubernetes", namespace="ci", pod_template=template, kubeconfig=kubeconfig
    )
    env = {"LISTENER_PROVISIONER": "kubernetes", "LISTENER_K8S_NAMESPACE": "runners",
           "LISTENER_K8S_POD_TEMPLATE": str(template)}  # fmt: skip
    chosen = parse(*BASE[:6], env=env).scale_sets[0].provisioner
    assert (chosen.namespace, chosen.pod_template, chosen.kubeconfig) == ("runners", template, None)
    file = write(
        tmp_path / "listener.toml",
        'provisioner = "kubernetes"\npod_template = "pod.yaml"\n[[scale_set]]\nname = "a"\n'
        '[[scale_set]]\nname = "b"\nnamespace = "b-runners"\n',
    )
    a, b = parse(*BASE[:4], "--config", str(file)).scale_sets
    assert (a.provisioner.namespace, b.provisioner.namespace) == (None, "b-runners")
    assert a.provisioner.pod_template == b.provisioner.pod_template == template  # from the file's directory


def test_the_ec2_settings_from_flags_variables_and_a_file(tmp_path: Path) -> None:
    flags = parse(*BASE[:6], "--provisioner", "ec2", "--launch-template", "runners",
                  "--subnets", "subnet-a, subnet-b", "--spot", "--jit-via-ssm", "--boot-timeout", "120",
                  "--aws-region", "eu-west-1", "--aws-endpoint-url", "http://127.0.0.1:5000")  # fmt: skip
    assert flags.scale_sets[0].provisioner == ProvisionerSettings(
        kind="ec2",
        launch_template="runners",
        subnets=("subnet-a", "subnet-b"),
        spot=True,
        jit_via_ssm=True,
        boot_timeout=120.0,
        aws_region="eu-west-1",
        aws_endpoint_url="http://127.0.0.1:5000",
    )
    env = {"LISTENER_PROVISIONER": "ec2", "LISTENER_EC2_LAUNCH_TEMPLATE": "lt-0abc",
           "LISTENER_EC2_SUBNETS": "s-1", "LISTENER_EC2_SPOT": "true", "LISTENER_EC2_JIT_VIA_SSM": "no",
           "LISTENER_EC2_BOOT_TIMEOUT": "90.5", "AWS_REGION": "us-east-2",
           "AWS_ENDPOINT_URL": "https://localhost:4566"}  # fmt: skip
    chosen = parse(*BASE[:6], env=env).scale_sets[0].provisioner
    assert (chosen.launch_template, chosen.subnets, chosen.spot, chosen.jit_via_ssm) == (
        "lt-0abc",
        ("s-1",),
        True,
        False,
    )
    assert (chosen.boot_timeout, chosen.aws_region, chosen.aws_endpoint_url) == (
        90.5,
        "us-east-2",
        "https://localhost:4566",
    )
    file = write(
        tmp_path / "listener.toml",
        'provisioner = "ec2"\nlaunch_template = "lt-1"\n[[scale_set]]\nname = "a"\n'
        '[[scale_set]]\nname = "b"\nspot = true\nsubnets = ["s-2", "s-3"]\nboot_timeout = 60\n',
    )
    a, b = parse(*BASE[:4], "--config", str(file)).scale_sets
    assert (a.provisioner.launch_template, a.provisioner.spot, a.provisioner.subnets) == ("lt-1", False, ())
    assert (b.provisioner.spot, b.provisioner.subnets, b.provisioner.boot_timeout) == (
        True,
        ("s-2", "s-3"),
        60.0,
    )


def test_kubernetes_and_ec2_settings_are_read_only_for_their_provisioner() -> None:
    env = {"KUBECONFIG": "/nonexistent/config", "AWS_ENDPOINT_URL": "not a url", "LISTENER_EC2_SPOT": "maybe"}
    assert parse(*BASE, env=env).scale_sets[0].provisioner == ProvisionerSettings(runner_command="./run.sh")


def test_a_pod_template_is_checked_when_the_listener_starts(tmp_path: Path) -> None:
    template = write(tmp_path / "pod.yaml", "kind: Deployment\n")
    message = usage_error(*BASE[:6], "--provisioner", "kubernetes", "--pod-template", str(template))
    assert message.startswith(f"--pod-template {template}: its kind is 'Deployment'; give a Pod")


def test_help_names_each_variable_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse("--help")
    assert exited.value.code == 0
    out = capsys.readouterr().out
    for variable in ("GITHUB_CONFIG_URL", "GITHUB_TOKEN", "GITHUB_APP_INSTALLATION_ID", "LISTENER_CONFIG"):
        assert variable in out
    assert "LISTENER_MAX_RUNNERS" in out


# --- every mistake is one line that says what to do ----------------------------------------------

NO_SCALE_SET = ("--url", URL, "--token", "t", "--runner-command", "r")


@pytest.mark.parametrize(
    ("argv", "env", "toml", "expected"),
    [
        (["--bogus"], {}, None, "unrecognized arguments: --bogus"),
        (["--max-runners"], {}, None, "expected one argument"),
        (["--url", "github.com/acme", "--token", "t"], {}, None, "--url 'github.com/acme': it needs an http"),
        (["--url", "https://github.com/a/b/c", "--token", "t"], {}, None, "https://github.com/ORG/REPO"),
        ([], {}, None, "no GitHub URL: set --url (GITHUB_CONFIG_URL)"),
        ([*NO_SCALE_SET], {}, None, "give --scale-set NAME, or [[scale_set]] tables in --config"),
        (["--url", URL, "--scale-set", "x", "--runner-command", "r"], {}, None, "set GITHUB_TOKEN"),
        (BASE, {"GITHUB_APP_ID": "1"}, None, "both a token (--token) and a GitHub App (GITHUB_APP_ID)"),
        (BASE[:2], {"GITHUB_APP_ID": "Iv1.abc"}, None, "GITHUB_APP_ID=Iv1.abc: not a numeric App ID"),
        (
            BASE[:2],
            {"GITHUB_APP_ID": "1", "GITHUB_APP_INSTALLATION_ID": "abc"},
            None,
            "GITHUB_APP_INSTALLATION_ID=abc: must be an",
        ),
        (BASE[:2], {"GITHUB_APP_ID": "1", "GITHUB_APP_CLIENT_ID": "Iv1.a"}, None, "keep one"),
        (BASE[:2], {"GITHUB_APP_ID": "1"}, None, "needs its private key"),
        (BASE[:2], {"GITHUB_APP_PRIVATE_KEY": "x"}, None, "needs its ID"),
        (
            BASE[:2],
            {"GITHUB_APP_ID": "1", "GITHUB_APP_PRIVATE_KEY": "nope"},
            None,
            "GITHUB_APP_PRIVATE_KEY: the",
        ),
        (
            [*BASE, "--min-runners", "5", "--max-runners", "2"],
            {},
            None,
            "--min-runners 5 is above --max-runners 2",
        ),
        (
            [*BASE, "--min-runners", "-1"],
            {},
            None,
            "--min-runners -1: must be an integer from 0 to 2147483647",
        ),
        ([*BASE, "--max-runners", "2147483648"], {}, None, "from 0 to 2147483647"),
        ([*BASE, "--max-runners", "ten"], {}, None, "--max-runners ten: must be an integer"),
        (
            [*BASE, "--log-level", "LOUD"],
            {},
            None,
            "--log-level LOUD: must be one of debug, info, warning, error",
        ),
        ([*BASE, "--log-format", "xml"], {}, None, "text, json"),
        ([*BASE, "--shutdown-timeout", "0"], {}, None, "above 0"),
        ([*BASE, "--shutdown-timeout", "nan"], {}, None, "above 0"),
        ([*BASE, "--provisioner", "k8s"], {}, None, "command, docker, kubernetes, ec2, simulate"),
        ([*BASE[:6], "--provisioner", "ec2"], {}, None, "give --launch-template NAME (LISTENER_EC2_LAUNCH"),
        (
            [*BASE[:6], "--provisioner", "ec2", "--launch-template", "lt-1", "--boot-timeout", "soon"],
            {},
            None,
            "--boot-timeout soon: must be a number of seconds",
        ),
        (
            [*BASE[:6], "--provisioner", "ec2", "--launch-template", "lt-1"],
            {"AWS_ENDPOINT_URL": "localhost:4566"},
            None,
            "AWS_ENDPOINT_URL=localhost:4566: give an http:// or https:// URL",
        ),
        (
            [*BASE[:6], "--provisioner", "ec2", "--launch-template", "lt-1"],
            {"LISTENER_EC2_SPOT": "perhaps"},
            None,
            "LISTENER_EC2_SPOT=perhaps: must be true or false",
        ),
        (
            [*BASE[:6], "--provisioner", "ec2"],
            {},
            "launch_template = 'lt-1'\nsubnets = 3",
            "list of subnet ids",
        ),
        (
            [*BASE[:6], "--provisioner", "kubernetes", "--namespace", "CI_Runners"],
            {},
            None,
            "--namespace CI_Runners: not a Kubernetes namespace",
        ),
        (
            [*BASE[:6], "--provisioner", "kubernetes"],
            {"KUBECONFIG": "/nonexistent/a:/nonexistent/b"},
            None,
            "KUBECONFIG=/nonexistent/a:/nonexistent/b: no such file (one file, not a list)",
        ),
        (
            [*BASE[:6], "--provisioner", "kubernetes", "--pod-template", "/nonexistent/pod.yaml"],
            {},
            None,
            "--pod-template /nonexistent/pod.yaml: cannot read it",
        ),
        ([*BASE[:6]], {}, None, "runs runners with a command: give --runner-command CMD"),
        ([*BASE[:6], "--runner-command", "run 'unclosed"], {}, None, "as a shell would"),
        ([*BASE, "--metrics-addr", "9100"], {}, None, "such as 127.0.0.1:9100"),
        ([*BASE, "--metrics-addr", "::1:9100"], {}, None, "[::1]:9100"),
        ([*BASE, "--metrics-addr", "host:65536"], {}, None, "up to 65535"),
        ([*BASE, "--ca-file", "/nonexistent/ca.pem"], {}, None, "--ca-file /nonexistent/ca.pem: cannot read"),
        ([*BASE, "--chaos"], {}, None, "--chaos only works with --simulate"),
        ([*BASE, "--jobs", "3"], {}, None, "--jobs only works with --simulate"),
        (["--simulate", "--jobs", "0"], {}, None, "from 1 to 10000"),
        (["--simulate"], {"LISTENER_CHAOS": "maybe"}, None, "LISTENER_CHAOS=maybe: must be true or false"),
        (
            ["--config", "/nonexistent/listener.toml"],
            {},
            None,
            "--config /nonexistent/listener.toml: cannot read",
        ),
        (BASE, {}, "max_runners = = 3", "not valid TOML: Invalid value (at line 1, column 15)"),
        (BASE, {}, "max_runner = 3", "unknown key 'max_runner' in the top level of"),
        (BASE, {}, "max_runner = 3", "did you mean 'max_runners'?"),
        (BASE, {}, "max_runners = '3'", "must be an integer"),
        (BASE, {}, "max_runners = true", "max_runners = true in "),
        (BASE, {}, "labels = 3", "must be a list of strings"),
        (BASE, {}, "shutdown_timeout = '30'", 'shutdown_timeout = "30" in '),
        (BASE, {}, "chaos = 'yes'", "must be true or false"),
        (BASE, {}, "[logging]\nlevel = 'debug'", "unknown key 'logging' in the top level of"),
        (BASE, {}, "labels = [1]", "must be a list of strings"),
        (BASE, {}, "scale_set = 'x'", "must be [[scale_set]] tables"),
        (BASE, {}, "[[scale_set]]\nname = 'a'", "--scale-set and the [[scale_set]] tables in"),
        (NO_SCALE_SET, {}, "[[scale_set]]\nrunner_group = 'a'", "[[scale_set]] #1 of"),
        (
            NO_SCALE_SET,
            {},
            "[[scale_set]]\nname = 'a'\n[[scale_set]]\nname = 'A'",
            "'A' is taken by [[scale_set]] #1",
        ),
        (NO_SCALE_SET, {}, "[[scale_set]]\nname = 'a'\nmin_runers = 1", "in [[scale_set]] #1 of"),
        (NO_SCALE_SET, {}, "[[scale_set]]\nname = 'a'\nmin_runers = 1", "did you mean 'min_runners'?"),
        (NO_SCALE_SET, {}, "[[scale_set]]\nname = 'a'\nlog_level = 'debug'", "belongs at the top level"),
        (
            NO_SCALE_SET,
            {},
            "[[scale_set]]\nname = 'a'\nmax_runners = -1",
            "max_runners = -1 in [[scale_set]] #1",
        ),
    ],
)
def test_each_mistake_is_one_line_that_says_what_to_do(
    tmp_path: Path, argv: Sequence[str], env: dict[str, str], toml: str | None, expected: str
) -> None:
    if toml is not None:
        argv = [*argv, "--config", str(write(tmp_path / "listener.toml", toml + "\n"))]
    assert expected in usage_error(*argv, env=env)


def test_a_missing_or_bad_key_file_is_named_and_its_content_never_shown(tmp_path: Path) -> None:
    argv = (*BASE[:2], *BASE[4:])
    missing = tmp_path / "missing.pem"
    message = usage_error(*argv, env={"GITHUB_APP_ID": "1", "GITHUB_APP_PRIVATE_KEY_FILE": str(missing)})
    assert f"GITHUB_APP_PRIVATE_KEY_FILE={missing}: cannot read" in message
    garbage = write(tmp_path / "garbage.pem", "SUPERSECRET not a key")
    message = usage_error(*argv, "--app-id", "1", "--app-private-key-file", str(garbage))
    assert f"--app-private-key-file {garbage}: the GitHub App private key is not PEM" in message
    assert "SUPERSECRET" not in message
    message = usage_error(*argv, env={"GITHUB_APP_ID": "1", "GITHUB_APP_PRIVATE_KEY": "SUPERSECRET"})
    assert "SUPERSECRET" not in message


def test_secrets_are_never_echoed(tmp_path: Path) -> None:
    assert "ghp_secret" not in usage_error(*BASE, "--app-id", "1")
    assert "ghp_inurl" not in usage_error("--url", "https://x:ghp_inurl@github.com/a/b/c", "--token", "t")
    toml = write(tmp_path / "listener.toml", "token = 5\n")
    message = usage_error("--url", URL, "--config", str(toml))
    assert "token = (hidden)" in message


def test_a_ca_file_that_is_not_pem_is_one_line(tmp_path: Path) -> None:
    bad = write(tmp_path / "ca.pem", "not a certificate\n")
    assert "holds no PEM CA certificate" in usage_error(*BASE, "--ca-file", str(bad))
    assert "cannot read" in usage_error(*BASE, "--ca-file", str(tmp_path))


def test_a_toml_file_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    toml = tmp_path / "listener.toml"
    toml.write_bytes(b"url = '\xff'\n")
    assert "not a UTF-8 text file" in usage_error(*BASE, "--config", str(toml))


# --- logs ----------------------------------------------------------------------------------------


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    noisy = {name: logging.getLogger(name).level for name in logs.NOISY_LOGGERS}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, noisy_level in noisy.items():
        logging.getLogger(name).setLevel(noisy_level)


@pytest.mark.usefixtures("restore_logging")
def test_text_logs_carry_time_level_logger_and_message() -> None:
    stream = io.StringIO()
    logs.configure("info", "text", stream)
    logging.getLogger("listener.test").info("started %d scale sets", 2)
    logging.getLogger("listener.test").debug("not shown")
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO    listener.test: started 2 scale sets\n",
        stream.getvalue(),
    )


@pytest.mark.usefixtures("restore_logging")
def test_json_logs_are_one_object_a_line() -> None:
    stream = io.StringIO()
    logs.configure("info", "json", stream)
    log = logging.getLogger("listener.test")
    log.warning("runner %s\nstarted", "r-1", extra={"scale_set": "linux", "runners": [1, 2], "obj": object()})
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        log.exception("it failed")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["level"] == "warning"
    assert first["logger"] == "listener.test"
    assert first["message"] == "runner r-1\nstarted"
    assert (first["scale_set"], first["runners"]) == ("linux", [1, 2])
    assert "obj" not in first
    assert "exc" not in first
    assert "args" not in first
    moment = datetime.datetime.fromisoformat(first["time"])
    assert moment.utcoffset() == datetime.timedelta(0)
    assert abs(datetime.datetime.now(datetime.UTC) - moment) < datetime.timedelta(minutes=1)
    assert second["exc"] == "ValueError: bad thing"
    assert "Traceback" not in stream.getvalue()


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize(("level", "shown"), [("info", False), ("debug", True)])
def test_httpx_info_is_shown_only_at_debug(level: str, shown: bool) -> None:
    stream = io.StringIO()
    logs.configure(level, "text", stream)
    for name in ("httpx", "httpcore", "hypercorn.error", "hypercorn.access"):
        logging.getLogger(name).info("HTTP Request: GET %s", name)
        logging.getLogger(name).warning("a warning from %s", name)
    text = stream.getvalue()
    assert ("HTTP Request: GET httpx" in text) is shown
    assert ("HTTP Request: GET hypercorn.access" in text) is shown
    assert "a warning from httpcore" in text


@pytest.mark.usefixtures("restore_logging")
def test_configure_replaces_the_handlers() -> None:
    first, second = io.StringIO(), io.StringIO()
    logs.configure("info", "text", first)
    logs.configure("warning", "json", second)
    assert len(logging.getLogger().handlers) == 1
    logging.getLogger("listener.test").warning("once")
    logging.getLogger("listener.test").info("filtered")
    assert first.getvalue() == ""
    assert [json.loads(line)["message"] for line in second.getvalue().splitlines()] == ["once"]
