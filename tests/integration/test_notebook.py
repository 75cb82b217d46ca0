"""examples/explore_queue.ipynb runs top to bottom against FakeGitHub, draws its plot, and shows no secret.

The notebook runs in a real Jupyter kernel (nbclient and ipykernel, both in the `notebook`
extra), with every GITHUB_* variable removed so that it takes the fake. It runs once per
module; a probe cell appended to the in-memory copy (never to the file) then prints the
secrets the notebook held, so the outputs can be searched for them.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
from nbclient import NotebookClient
from nbformat import NotebookNode

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "examples" / "explore_queue.ipynb"
KERNEL = "python3"
CELL_TIMEOUT = 120  # seconds per cell: a cold matplotlib builds its font cache on first import
PLOT_CELL = "plot"
PROBE_CELL = "test-probe"
ENV_VARS = re.compile(r"GITHUB_\w*|EXPLORE_SCALE_SET")

# Runs in the notebook's kernel after the last cell. `minted`, `config` and `fake` are the
# notebook's own names (section 5 and the set-up).
PROBE = """
import json as _json
from cryptography.hazmat.primitives import serialization as _serialization

_formats = [_serialization.PrivateFormat.PKCS8, _serialization.PrivateFormat.TraditionalOpenSSL]
_numbers = _json.loads(config.files[".credentials_rsaparams"])
print(_json.dumps({
    "blob": minted.encoded_jit_config.get_secret_value(),
    "numbers": [_numbers[name] for name in ("d", "p", "q", "dp", "dq", "inverseQ")],
    "pem": [
        config.private_key().private_bytes(
            _serialization.Encoding.PEM, form, _serialization.NoEncryption()
        ).decode()
        for form in _formats
    ],
    "token": fake.pat().token.get_secret_value(),
}))
"""

LONG_BASE64 = re.compile(r"[A-Za-z0-9+/]{64,}={0,2}")
"""A run this long in text is a key, a token or a blob: nothing the notebook means to show is."""


def read_notebook() -> NotebookNode:
    notebook: NotebookNode = nbformat.read(NOTEBOOK, as_version=4)  # type: ignore[no-untyped-call]
    return notebook


def python3_kernel_is_this_interpreter() -> None:
    """Fail early, saying what to do, when the `python3` kernel would not run this venv's Python."""
    try:
        spec = KernelSpecManager().get_kernel_spec(KERNEL)
    except NoSuchKernel:
        pytest.fail(
            f"no {KERNEL!r} Jupyter kernel: install ipykernel (the notebook extra) in this environment"
        )
    # jupyter_client runs a kernel whose argv starts with "python" on sys.executable
    ours = {"python", f"python{sys.version_info[0]}", "python{}.{}".format(*sys.version_info[:2])}
    if spec.argv[0] not in ours and Path(spec.argv[0]).resolve() != Path(sys.executable).resolve():
        pytest.fail(
            f"the {KERNEL!r} kernel at {spec.resource_dir} runs {spec.argv[0]}, not {sys.executable}: "
            f"run `{sys.executable} -m ipykernel install --sys-prefix`"
        )


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> NotebookNode:
    """The notebook after a run against the fake, with the probe cell last."""
    python3_kernel_is_this_interpreter()
    notebook = read_notebook()
    notebook.cells.append(nbformat.v4.new_code_cell(PROBE, id=PROBE_CELL))  # type: ignore[no-untyped-call]
    client = NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT,
        kernel_name=KERNEL,
        resources={"metadata": {"path": str(ROOT)}},
    )
    with pytest.MonkeyPatch.context() as env:
        for name in [name for name in os.environ if ENV_VARS.fullmatch(name)]:
            env.delenv(name)  # the kernel inherits this environment: no real GitHub
        # the kernel's history and connection files go to a temporary folder, not the home directory
        env.setenv("IPYTHONDIR", str(tmp_path_factory.mktemp("ipython")))
        env.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path_factory.mktemp("jupyter-runtime")))
        # its own event loop, closed afterwards (`client.execute()` would leave one behind);
        # a failing cell raises CellExecutionError here, with the cell and its traceback
        asyncio.run(client.async_execute())
    return notebook


def code_cells(notebook: NotebookNode) -> list[NotebookNode]:
    return [cell for cell in notebook.cells if cell.cell_type == "code" and cell.get("id") != PROBE_CELL]


def printed(cells: list[NotebookNode]) -> str:
    return "".join(output.text for cell in cells for output in cell.outputs if output.output_type == "stream")


def output_text(output: NotebookNode) -> str:
    """Everything an output shows as text (images left out: a PNG is base64 too)."""
    if output.output_type == "stream":
        return str(output.text)
    if output.output_type == "error":
        return "\n".join([output.ename, output.evalue, *output.traceback])
    data = output.get("data", {})
    return "\n".join(str(value) for mime, value in data.items() if not mime.startswith("image/"))


def secrets(notebook: NotebookNode) -> list[str]:
    """What the probe printed: the JIT blob and its files, the key's numbers and PEM lines, the token."""
    (probe,) = [cell for cell in notebook.cells if cell.get("id") == PROBE_CELL]
    held = json.loads(printed([probe]))
    blob = str(held["blob"])
    files = json.loads(base64.b64decode(blob)).values()
    pem_lines = [line for pem in held["pem"] for line in pem.splitlines() if "-----" not in line]
    return [blob, *files, *held["numbers"], *pem_lines, str(held["token"])]


# --------------------------------------------------------------------------- the run


def test_every_cell_runs_without_an_error(executed: NotebookNode) -> None:
    cells = code_cells(executed)
    assert cells
    assert [cell.id for cell in cells if cell.execution_count is None] == []
    errors = [
        (cell.id, output.ename, output.evalue)
        for cell in cells
        for output in cell.outputs
        if output.output_type == "error"
    ]
    assert errors == []


def test_the_simulated_hour_draws_its_plot(executed: NotebookNode) -> None:
    (plot,) = [cell for cell in executed.cells if cell.get("id") == PLOT_CELL]
    images = [
        output.data["image/png"]
        for output in plot.outputs
        if output.output_type == "display_data" and "image/png" in output.get("data", {})
    ]
    assert len(images) == 1
    assert base64.b64decode(images[0]).startswith(b"\x89PNG\r\n\x1a\n")


def test_every_job_of_the_hour_got_a_runner(executed: NotebookNode) -> None:
    text = printed(code_cells(executed))
    match = re.search(r"(\d+) of (\d+) jobs got a runner in the hour", text)
    assert match is not None, text
    assert int(match.group(1)) == int(match.group(2)) > 50


def test_no_output_shows_the_jit_config_a_private_key_or_the_token(executed: NotebookNode) -> None:
    needles = secrets(executed)
    assert len(needles) > 10
    shown = "\n".join(output_text(output) for cell in code_cells(executed) for output in cell.outputs)
    assert "JitConfig" in shown  # the JIT section ran and showed the decoded config
    # any 32 characters of a secret, so that a secret cut short is found too
    pieces = {needle[i : i + 32] for needle in needles for i in range(0, max(1, len(needle) - 31), 16)}
    assert sorted(piece[:8] for piece in pieces if piece in shown) == []
    assert re.findall(r"BEGIN (?:RSA |ENCRYPTED )?PRIVATE", shown) == []
    assert [run[:12] for run in LONG_BASE64.findall(shown)] == []


# --------------------------------------------------------------------------- the file


def committed_cells() -> Iterator[dict[str, object]]:
    yield from json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]


def test_the_committed_notebook_is_valid_and_has_no_outputs() -> None:
    nbformat.validate(read_notebook())
    code = [cell for cell in committed_cells() if cell["cell_type"] == "code"]
    assert code
    assert [cell["id"] for cell in code if cell["outputs"] != [] or cell["execution_count"] is not None] == []
