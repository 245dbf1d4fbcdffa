"""``python -m handdgp``: the ``handdgp`` command line."""

import sys

from handdgp.cli import main

sys.exit(main())
