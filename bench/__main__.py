"""``python -m bench ...``: the same as ``digits benchmark ...``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from bench.cli import add_benchmark


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description="The side-by-side benchmark of digits.")
    sub = parser.add_subparsers(dest="command", required=True)
    add_benchmark(sub)
    args = parser.parse_args(["benchmark", *(sys.argv[1:] if argv is None else argv)])
    handler: Callable[[argparse.Namespace], int] = args.handler
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
