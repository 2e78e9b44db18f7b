"""Command line: ``python -m demodata generate | materialise DIR | sheet PNG``."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from demodata.store import PACKAGE_DIR


def _generate(args: argparse.Namespace) -> int:
    # Imported here: only regeneration needs Pillow and the fonts.
    from demodata.generate import DEFAULT_SEED, generate

    start = time.monotonic()
    npz_path, meta_path = generate(
        Path(args.out), seed=DEFAULT_SEED if args.seed is None else args.seed, jobs=args.jobs or 1
    )
    size_mb = npz_path.stat().st_size / 1e6
    print(
        f"wrote {npz_path} ({size_mb:.1f} MB) and {meta_path} in {time.monotonic() - start:.0f} s"
    )
    return 0


def _materialise(args: argparse.Namespace) -> int:
    from demodata.store import materialise

    for stem, path in materialise(Path(args.dest)).items():
        print(f"{stem}: {path}")
    return 0


def _sheet(args: argparse.Namespace) -> int:
    from demodata.sheet import contact_sheet

    print(contact_sheet(Path(args.png), split=args.split, per_class=args.per_class))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demodata", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    gen = commands.add_parser("generate", help="regenerate the committed .npz + .json (fonts)")
    gen.add_argument("--out", default=str(PACKAGE_DIR), help="output folder (default: package)")
    gen.add_argument("--seed", type=int, default=None, help="default: generate.DEFAULT_SEED")
    gen.add_argument("--jobs", type=int, default=min(4, os.cpu_count() or 1))
    gen.set_defaults(run=_generate)

    mat = commands.add_parser("materialise", help="write the four course .npy files to DEST")
    mat.add_argument("dest")
    mat.set_defaults(run=_materialise)

    sheet = commands.add_parser("sheet", help="write a contact sheet PNG of the committed data")
    sheet.add_argument("png")
    sheet.add_argument("--split", choices=("train", "test"), default="test")
    sheet.add_argument("--per-class", type=int, default=12)
    sheet.set_defaults(run=_sheet)

    args = parser.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
