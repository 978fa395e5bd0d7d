"""python -m gradfuzz: the same program as the `gradfuzz` command."""

import sys

from gradfuzz.cli import main

if __name__ == "__main__":
    sys.exit(main())
