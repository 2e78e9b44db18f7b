"""``python -m scorer`` and the ``katakana-check`` script: see ``scorer.cli``."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from scorer.cli import main as _cli_main


def main(argv: Sequence[str] | None = None) -> int:
    return _cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
