"""The command line: settings in, an exit code out, and never a traceback for a user's mistake."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

from .settings import EXIT_USAGE, UsageError

PROG = "listener"


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Run the listener; return its exit code (0 done, 1 failed, 2 usage, 3 credentials refused)."""
    from . import app, config, logs

    try:
        settings = config.parse(sys.argv[1:] if argv is None else argv, os.environ if env is None else env)
        logs.configure(settings.log_level, settings.log_format)
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return app.run(settings)
