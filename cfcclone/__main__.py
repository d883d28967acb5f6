"""`python -m cfcclone`: the command line (for launchers such as torchrun)."""

import sys

from cfcclone.cli import main

sys.exit(main())
