"""``python -m samples build [--quiet] [--only NAME ...] [--dist DIR] [--quick]``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from samples.build import BUILDERS, DIST, build


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m samples", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    command = commands.add_parser("build", help="train the samples and write their zips")
    command.add_argument("--quiet", action="store_true", help="print nothing")
    command.add_argument("--only", nargs="+", choices=list(BUILDERS), help="build only these")
    command.add_argument("--dist", type=Path, default=DIST, help=f"default: {DIST}")
    command.add_argument("--quick", action="store_true", help="one epoch each (for tests)")
    args = parser.parse_args(argv)
    log = (lambda _: None) if args.quiet else print
    build(args.only, dist=args.dist, quick=args.quick, log=log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
