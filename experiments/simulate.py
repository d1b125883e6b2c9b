"""`python -m experiments.simulate`: an alias of `fedtriage simulate`, kept for older notes and scripts."""

import sys

from cli.app import main

if __name__ == "__main__":
    sys.exit(main(["simulate", *sys.argv[1:]]))
