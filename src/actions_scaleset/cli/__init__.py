"""The `actions-scaleset` command line (docs/cli.md): scale sets, statistics, jobs, runners,
JIT configs, a live `watch`, a `fake` playground and a `doctor`.

Built on the public API; tables need rich (the `cli` extra), `--json` does not. Nothing
in the library imports this package: only the console script and `python -m actions_scaleset`.
"""

from ._main import main, run

__all__ = ["main", "run"]
