"""`python -m examples.provisioner_api`: the provisioning API."""

import sys

from .cli import main

sys.exit(main())
