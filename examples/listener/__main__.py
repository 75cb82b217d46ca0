"""`python -m examples.listener`: the reference listener."""

import sys

from .cli import main

sys.exit(main())
