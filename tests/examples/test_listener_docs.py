"""docs/reference-listener.md keeps up with the listener: every flag documented, the TOML example valid."""

from __future__ import annotations

import re
from pathlib import Path

from examples.listener import config

PAGE = Path(__file__).resolve().parents[2] / "docs" / "reference-listener.md"


def test_the_settings_table_documents_every_flag_with_its_variable() -> None:
    text = PAGE.read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| `(--[a-z-]+)[^`]*` \| `([A-Z0-9_]+)` \|", text, re.M))
    options = {option.flag: option.env for option in config._OPTIONS}
    assert rows == options


def test_the_config_file_example_is_a_valid_config(tmp_path: Path) -> None:
    (block,) = re.findall(r"```toml\n(.*?)```", PAGE.read_text(encoding="utf-8"), re.S)
    path = tmp_path / "listener.toml"
    path.write_text(block)
    settings = config.parse(["--config", str(path)], {"GITHUB_TOKEN": "ghp_example"})
    assert [s.name for s in settings.scale_sets] == ["linux", "linux-docker"]
    linux, docker = settings.scale_sets
    assert (linux.min_runners, linux.max_runners, linux.labels) == (1, 10, ("linux", "x64"))
    assert (docker.provisioner.kind, docker.max_runners) == ("docker", 4)
    assert settings.metrics_addr == ("127.0.0.1", 9100)
