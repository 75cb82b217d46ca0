"""Developer tasks: `nox -s tests`, `nox -s lint typecheck`, `nox -s docs`, `nox -s demo`, `nox -s tour`,
`nox -s bench`."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True

# No `python=` pin: every session gets its own virtualenv made from the interpreter nox runs
# under, so any CPython >= 3.11 (pyproject's requires-python) runs every session unchanged.


@nox.session
def tests(session: nox.Session) -> None:
    """The whole test suite, every async test on asyncio and on trio."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("-e", ".[lint]")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    session.install("-e", ".[typecheck]")
    session.run("mypy")


@nox.session
def docs(session: nox.Session) -> None:
    session.install("-e", ".[docs]")
    session.run("mkdocs", "build", "--strict", "--site-dir", "site", env={"NO_MKDOCS_2_WARNING": "1"})


@nox.session
def demo(session: nox.Session) -> None:
    """The reference listener, offline: a fake GitHub, a seeded workload, a live view (under a minute)."""
    session.install("-e", ".[testing,listener]")
    session.run("python", "-m", "examples.listener", "--simulate", *session.posargs)


@nox.session
def tour(session: nox.Session) -> None:
    """An offline tour of the SDK's layers: no network, no credentials."""
    session.install("-e", ".[testing]")
    session.run("python", "examples/tour.py", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks (issue 16): the SDK beside a raw-httpx baseline, in interleaved rounds; rewrites
    benchmarks/RESULTS.md. Under 5 minutes on 2 cores. Flags after `--`: `--only decode,burst`,
    `--rounds`, `--jobs`, `--pickups`, `--sets` (see `python -m benchmarks --help`)."""
    session.install("-e", ".[testing]")
    session.run("python", "-m", "benchmarks", *session.posargs)
