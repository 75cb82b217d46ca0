"""`python -m actions_scaleset.runner --jitconfig BLOB --exec 'CMD'` (see `_cli`)."""

from ._cli import main

raise SystemExit(main())
