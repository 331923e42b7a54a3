"""`python -m metta_numba` is the `metta-numba` command."""

import sys

from metta_numba.cli import main

sys.exit(main())
