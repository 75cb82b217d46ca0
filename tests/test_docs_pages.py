"""The documentation tells the truth about the package: its pages, its error tree, its extras."""

from __future__ import annotations

import re
import sys
import unicodedata
from pathlib import Path

import pytest

import actions_scaleset as asc
from actions_scaleset import errors

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(p.name for p in DOCS.glob("*.md"))
PROSE = (ROOT / "README.md", *sorted(DOCS.glob("*.md")))


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def nav_pages() -> list[str]:
    """The pages in mkdocs.yml's `nav:` (read without a YAML parser: the docs extra may be absent)."""
    text = read(ROOT / "mkdocs.yml")
    nav = text[text.index("\nnav:\n") :]
    return re.findall(r"^\s+-\s+[^:\n]+:\s*(\S+\.md)\s*$", nav, re.M)


def slug(heading: str) -> str:
    """The anchor mkdocs (Python-Markdown's toc) gives a heading."""
    text = unicodedata.normalize("NFKD", heading).encode("ascii", "ignore").decode()
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def headings(page: str) -> list[str]:
    return [h.strip() for h in re.findall(r"^#{1,6} (.+)$", read(DOCS / page), re.M)]


# --------------------------------------------------------------------------- pages


def test_every_docs_page_is_linked_from_the_home_page() -> None:
    linked = set(re.findall(r"\]\(([\w-]+\.md)(?:#[\w-]+)?\)", read(DOCS / "index.md")))
    assert sorted(set(PAGES) - {"index.md"} - linked) == []


def test_every_docs_page_is_in_the_navigation() -> None:
    assert sorted(nav_pages()) == PAGES


def test_the_home_page_links_only_pages_that_exist() -> None:
    linked = set(re.findall(r"\]\(([\w-]+\.md)", read(DOCS / "index.md")))
    assert linked <= set(PAGES)


def test_no_page_cites_the_private_spec_or_shared_fixtures() -> None:
    cited = [
        f"{path.name}: {line.strip()}"
        for path in PROSE
        for line in read(path).splitlines()
        if re.search(r"spec \u00a7|spec:|shared fixtures|\.\./shared", line)
    ]
    assert cited == []


def test_every_citation_of_the_protocol_notes_names_one_of_its_headings() -> None:
    titles = headings("protocol.md")
    anchors = {slug(title) for title in titles}
    this_file = Path(__file__).resolve()
    sources = [
        path
        for folder in ("src", "tests", "docs", "examples", "benchmarks")
        for path in (ROOT / folder).rglob("*")
        if path.suffix in (".py", ".md") and path.resolve() != this_file
    ]
    wrong = []
    for path in [*sources, ROOT / "README.md"]:
        text = read(path)
        wrong += [
            f"{path.name}: {t!r}"
            for t in re.findall(r'(?<![\w-])protocol\.md,? "([^"]+)"', text)
            if t not in titles
        ]
        wrong += [
            f"{path.name}: #{a}"
            for a in re.findall(r"(?<![\w-])protocol\.md#([\w-]+)", text)
            if a not in anchors
        ]
    assert wrong == []


def test_the_protocol_notes_have_unique_headings() -> None:
    titles = headings("protocol.md")
    assert len({slug(t) for t in titles}) == len(titles)


def test_the_configuration_page_passes_an_ssl_context_to_verify() -> None:
    page = read(DOCS / "configuration.md")
    assert re.search(r"verify\s*=\s*[\"']", page) is None  # httpx deprecated verify="path"
    assert "ssl.create_default_context(cafile=" in page
    assert "verify=tls" in page


def test_every_anyio_run_example_also_shows_the_notebook_form() -> None:
    blocks = [
        (path.name, block)
        for path in PROSE
        for block in re.findall(r"```python\n(.*?)```", read(path), re.S)
        if "anyio.run(" in block
    ]
    assert blocks
    for name, block in blocks:
        for call in re.findall(r"^anyio\.run\((\w+)(?:, (\w+))?.*$", block, re.M):
            func, arg = call
            assert f"await {func}({arg})" in block, f"{name}: show `await {func}({arg})` for notebooks"


# --------------------------------------------------------------------------- the error tree

TREE_LINE = re.compile(r"^(?P<indent>(?:│   |    )*)(?:├── |└── )(?P<name>[A-Z]\w+)(?P<rest>.*)$")


def documented_tree() -> dict[str, tuple[str | None, str]]:
    """name -> (parent on the page, the rest of its line), from the tree on errors.md."""
    page = read(DOCS / "errors.md")
    block = re.search(r"```text\n(ActionsScaleSetError.*?)```", page, re.S)
    assert block is not None, "errors.md has no exception tree"
    lines = block.group(1).splitlines()
    root = lines[0].split()[0]
    tree: dict[str, tuple[str | None, str]] = {root: (None, lines[0])}
    parents = [root]
    for line in lines[1:]:
        match = TREE_LINE.match(line)
        if match is None:
            continue  # a note continued from the line above
        depth = len(match.group("indent")) // 4 + 1
        del parents[depth:]
        name = match.group("name")
        assert name not in tree, f"{name} appears twice"
        tree[name] = (parents[depth - 1], match.group("rest"))
        parents.append(name)
    return tree


def public_exceptions() -> dict[str, type[BaseException]]:
    found = {name: getattr(errors, name) for name in errors.__all__}
    return {
        name: cls for name, cls in found.items() if isinstance(cls, type) and issubclass(cls, BaseException)
    }


def public_base(cls: type) -> type:
    """The first base, skipping private helpers (`_WithIds`)."""
    base = cls.__bases__[0]
    while base.__name__.startswith("_"):
        base = base.__bases__[0]
    return base


def test_the_error_tree_names_every_public_exception_and_nothing_else() -> None:
    assert sorted(documented_tree()) == sorted(public_exceptions())


def test_each_exception_in_the_error_tree_sits_under_its_base_class() -> None:
    tree = documented_tree()
    misplaced = {
        name: (parent, public_base(cls).__name__)
        for name, cls in public_exceptions().items()
        if name in tree and (parent := tree[name][0]) is not None and parent != public_base(cls).__name__
    }
    assert misplaced == {}


def test_the_error_tree_names_each_second_base_class() -> None:
    tree = documented_tree()
    for name, cls in public_exceptions().items():
        for extra in cls.__bases__[1:]:
            assert f"also a {extra.__name__}" in tree[name][1], f"say that {name} is also a {extra.__name__}"


def test_every_public_exception_is_exported_by_the_package() -> None:
    assert sorted(set(public_exceptions()) - set(asc.__all__)) == []


# --------------------------------------------------------------------------- optional extras


def test_prometheus_metrics_without_prometheus_client_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    config = asc.GitHubConfig.parse("https://github.com/my-org", env={})
    with pytest.raises(ModuleNotFoundError, match=re.escape('pip install "actions-scaleset[metrics]"')):
        asc.PrometheusMetrics(config, "linux")


@pytest.mark.anyio
async def test_serving_the_fake_without_hypercorn_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from actions_scaleset.testing import FakeGitHub

    loaded = [name for name in sys.modules if name.startswith("hypercorn.")]
    for name in ["hypercorn", *loaded]:
        monkeypatch.setitem(sys.modules, name, None)  # as if the testing extra were not installed
    with pytest.raises(ModuleNotFoundError, match=re.escape('pip install "actions-scaleset[testing]"')):
        async with FakeGitHub().serve():
            pass
