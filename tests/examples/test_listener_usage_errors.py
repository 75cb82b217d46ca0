"""`python -m examples.listener` with a user's mistake: exit 2 and one line on stderr, never a traceback.

Each case runs the real program in a clean environment (only PATH, HOME and SYSTEMROOT of
this one), so a developer's own GITHUB_TOKEN cannot change the outcome.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import attrs
import pytest

from tests import keys

REPO = Path(__file__).resolve().parents[2]
URL = ("--url", "https://github.com/acme")
RUNNABLE = (*URL, "--scale-set", "linux", "--runner-command", "./run.sh")
"""With a credential, a run that would get past parsing."""
TOKEN = {"GITHUB_TOKEN": "ghp_not_a_real_token"}


@attrs.frozen
class Case:
    id: str
    args: tuple[str, ...]
    word: str
    """What the one line must contain to be useful."""
    env: dict[str, str] = attrs.field(factory=dict)
    files: dict[str, str] = attrs.field(factory=dict)
    """Written to a temporary directory first; `{tmp}` in args and env is that directory."""


NO_PROMETHEUS = 'raise ImportError("No module named prometheus_client (simulated)")\n'
NO_MODULE = 'raise ImportError("No module named {} (simulated)")\n'

CASES = [
    Case("bad-flag", ("--max", "3"), "unrecognized arguments: --max"),
    Case("url-without-scheme", ("--url", "github.com/acme", *RUNNABLE[2:]), "https://", TOKEN),
    Case("no-credential", RUNNABLE, "GITHUB_TOKEN"),
    Case(
        "unreadable-key-file",
        RUNNABLE,
        "{tmp}/missing.pem",
        {"GITHUB_APP_CLIENT_ID": "Iv1.0123", "GITHUB_APP_PRIVATE_KEY_FILE": "{tmp}/missing.pem"},
    ),
    Case(
        "installation-id-not-a-number",
        RUNNABLE,
        "GITHUB_APP_INSTALLATION_ID",
        {
            "GITHUB_APP_ID": "1",
            "GITHUB_APP_INSTALLATION_ID": "abc",
            "GITHUB_APP_PRIVATE_KEY_FILE": "{tmp}/k.pem",
        },
        {"k.pem": keys.pem()},
    ),
    Case(
        "bad-toml",
        (*RUNNABLE, "--config", "{tmp}/l.toml"),
        "line 1",
        TOKEN,
        {"l.toml": "max_runners = = 3\n"},
    ),
    Case("min-above-max", (*RUNNABLE, "--min-runners", "5", "--max-runners", "2"), "max-runners", TOKEN),
    Case("log-level", (*RUNNABLE, "--log-level", "LOUD"), "debug, info, warning, error", TOKEN),
    Case("chaos-without-simulate", (*RUNNABLE, "--chaos"), "--simulate", TOKEN),
    Case(
        "unknown-config-key",
        (*RUNNABLE, "--config", "{tmp}/l.toml"),
        "did you mean 'max_runners'",
        TOKEN,
        {"l.toml": "max_runner = 3\n"},
    ),
    Case(
        "metrics-without-prometheus",
        ("--simulate", "--metrics-addr", ":9100"),
        'pip install "actions-scaleset[listener]"',
        {"PYTHONPATH": "{tmp}/fake"},
        {"fake/prometheus_client/__init__.py": NO_PROMETHEUS},
    ),
    Case("command-without-runner-command", RUNNABLE[:4], "--runner-command", TOKEN),
    Case(
        "kubernetes-without-lightkube",
        (*RUNNABLE[:4], "--provisioner", "kubernetes"),
        'pip install "actions-scaleset[kubernetes]"',
        {**TOKEN, "PYTHONPATH": "{tmp}/fake"},
        {"fake/lightkube/__init__.py": NO_MODULE.format("lightkube")},
    ),
    Case(
        "ec2-without-aioboto3",
        (*RUNNABLE[:4], "--provisioner", "ec2", "--launch-template", "lt-1"),
        'pip install "actions-scaleset[ec2]"',
        {**TOKEN, "PYTHONPATH": "{tmp}/fake"},
        {"fake/aioboto3/__init__.py": NO_MODULE.format("aioboto3")},
    ),
    Case("ec2-without-launch-template", (*RUNNABLE[:4], "--provisioner", "ec2"), "--launch-template", TOKEN),
    # Said before GitHub is asked anything (these runs have no network): nothing is created first.
    Case(
        "ec2-without-region",
        (*RUNNABLE[:4], "--provisioner", "ec2", "--launch-template", "lt-1"),
        "no AWS region",
        {**TOKEN, "AWS_CONFIG_FILE": "{tmp}/none", "HOME": "{tmp}"},
    ),
    Case(
        "kubernetes-outside-a-cluster-without-kubeconfig",
        (*RUNNABLE[:4], "--provisioner", "kubernetes"),
        "no in-cluster service account and no kubeconfig",
        {**TOKEN, "HOME": "{tmp}"},
    ),
    Case(
        "kubernetes-bad-pod-template",
        (*RUNNABLE[:4], "--provisioner", "kubernetes", "--pod-template", "{tmp}/pod.yaml"),
        "--pod-template {tmp}/pod.yaml: not valid YAML at line",
        TOKEN,
        {"pod.yaml": "spec: {containers: [\n"},
    ),
    Case(
        "kubernetes-missing-kubeconfig",
        (*RUNNABLE[:4], "--provisioner", "kubernetes"),
        "KUBECONFIG={tmp}/nope: no such file",
        {**TOKEN, "KUBECONFIG": "{tmp}/nope"},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_a_mistake_exits_2_with_one_line(case: Case, tmp_path: Path) -> None:
    for name, text in case.files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    env = {name: os.environ[name] for name in ("PATH", "HOME", "SYSTEMROOT") if name in os.environ}
    env |= {name: value.replace("{tmp}", str(tmp_path)) for name, value in case.env.items()}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "examples.listener",
            *(arg.replace("{tmp}", str(tmp_path)) for arg in case.args),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "Traceback" not in result.stderr
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith("listener: error: ")
    assert case.word.replace("{tmp}", str(tmp_path)) in result.stderr
    assert result.stdout == ""
