"""`python -m actions_scaleset`: the `actions-scaleset` command line."""

from .cli import main

raise SystemExit(main())
