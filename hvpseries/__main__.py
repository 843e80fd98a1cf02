"""``python -m hvpseries`` runs the command line."""

import sys

from ._app._cli import main

if __name__ == "__main__":
    sys.exit(main())
