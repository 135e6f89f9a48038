"""Former entry point of `make bench`, kept so an older Makefile recipe still works: it runs the
current benchmark (bench/run.py). Use `python -m bench` instead."""

import sys

from bench.run import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
