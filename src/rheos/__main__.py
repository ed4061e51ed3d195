"""``python -m rheos``: the same as the ``rheos`` command."""

import sys

from rheos.operations.cli import main

if __name__ == "__main__":
    sys.exit(main())
