"""``python -m loadtest loadtest ...``: the same as ``digits loadtest ...`` (the benchmark: ``python -m bench``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from loadtest.cli import add_loadtest


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest", description="Load tests of digits.")
    sub = parser.add_subparsers(dest="command", required=True)
    add_loadtest(sub)
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
