"""CLI: ``python -m sandbox.image build|prune|hash|tag|rootfs``."""

from __future__ import annotations

import argparse
import sys

from sandbox.image import build as recipe


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.image")
    sub = parser.add_subparsers(dest="command", required=True)
    build_cmd = sub.add_parser("build", help="build the CPU image (skipped when up to date)")
    build_cmd.add_argument("--force", action="store_true", help="rebuild even if up to date")
    build_cmd.add_argument("--no-docker", action="store_true", help="only the rootfs (bwrap)")
    prune_cmd = sub.add_parser("prune", help="delete images and rootfs of older recipes")
    prune_cmd.add_argument("--keep", type=int, default=1, help="older recipes to keep")
    sub.add_parser("hash", help="print the recipe content hash")
    sub.add_parser("tag", help="print the image tag for the current recipe")
    sub.add_parser("rootfs", help="print the rootfs directory for the current recipe")
    args = parser.parse_args(argv)
    if args.command == "build":
        result = recipe.build(force=args.force, with_docker=not args.no_docker)
        state = "up to date" if result.skipped else f"built in {result.seconds:.0f} s"
        print(f"{result.tag} {result.rootfs} ({state})")
    elif args.command == "prune":
        for gone in recipe.prune(keep=args.keep):
            print(f"removed {gone}")
    elif args.command == "hash":
        print(recipe.content_hash())
    elif args.command == "tag":
        print(recipe.image_tag())
    else:
        print(recipe.rootfs_path())
    return 0


if __name__ == "__main__":
    sys.exit(main())
