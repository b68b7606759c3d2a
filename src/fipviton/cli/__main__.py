"""`python -m fipviton.cli ...` (e.g. under `accelerate launch -m fipviton.cli eval pipeline ...`)."""

import sys

from fipviton.cli import main

sys.exit(main())
