"""`python -m cfcclone.cli`: the command line."""

import sys

from cfcclone.cli import main

sys.exit(main())
