"""What a run of learner code may show a learner: the narrow, fixed forms, in one place.

Everything a sandbox leaves behind (``result.json``, stdout, exit status, files) was
chosen by learner code, which saw the hidden test images and, in a labelled legacy run,
the labels. Shown verbatim, any of it is a channel out: one exception message or file
name carried ten test images pixel-exact. So a learner is shown only what passes here
(unless the course turned logs on, which shows the log, and instructors, who see all):

* an **exception name**: the first class in the exception's MRO that is a builtin
  exception (or one of a few well-known library ones, ``KNOWN_EXCEPTIONS``), never a
  class the learner defined;
* a **source location** ``file, line N``: only when ``file`` is one of the zip's own
  files or a cell of the entry notebook, with a line number;
* a **module name** of a failed import: only when the name is written in the zip's own
  source files (an import the learner typed, not one computed at run time);
* an **exit status**: an integer 0-255;
* **numbers** the learner's code reported: rounded to ``DIGITS`` decimals.

Files and names from the zip were fixed at upload, before any hidden data was seen, so
they carry none of it. ``docs/legacy-contract.md`` counts the bits that remain.
"""

from __future__ import annotations

import builtins
import math
import re
from dataclasses import dataclass
from pathlib import Path

DIGITS = 4
# Exceptions from libraries that learners hit often and whose names help them.
KNOWN_EXCEPTIONS = {
    "_pickle.UnpicklingError": "UnpicklingError",
    "pickle.UnpicklingError": "UnpicklingError",
    "numpy.linalg.LinAlgError": "LinAlgError",
    "numpy.exceptions.AxisError": "AxisError",
    "torch.OutOfMemoryError": "OutOfMemoryError",
    "torch.cuda.OutOfMemoryError": "OutOfMemoryError",
}
BUILTIN_EXCEPTIONS = frozenset(
    name
    for name, value in vars(builtins).items()
    if isinstance(value, type) and issubclass(value, BaseException)
)
FALLBACK_EXCEPTION = "Exception"
SOURCE_SUFFIXES = (".py", ".ipynb")
# Bounds on the search for a module name in the zip's files.
MAX_SEARCH_FILES = 2000
MAX_SEARCH_BYTES = 512 << 20
CHUNK_BYTES = 8 << 20
_LOCATION = re.compile(r"^(?P<file>[^\n]{1,300}), line (?P<line>\d{1,7})$")
_CELL = re.compile(r"^(?P<entry>.+)\[code cell (?P<cell>\d{1,5})\]$")
_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}(\.[A-Za-z_][A-Za-z0-9_]{0,99}){0,9}$")


@dataclass(frozen=True)
class Provenance:
    """What was fixed at upload: the extracted zip's folder and its entry (relative path)."""

    root: Path
    entry: str


def exception_name(mro: str) -> str:
    """The first builtin or known exception among space-separated ``module.qualname``s."""
    for qualified in mro.split()[:32]:
        module, _, name = qualified.rpartition(".")
        if module == "builtins" and name in BUILTIN_EXCEPTIONS:
            return name
        if qualified in KNOWN_EXCEPTIONS:
            return KNOWN_EXCEPTIONS[qualified]
    return FALLBACK_EXCEPTION


def source_location(location: str, root: Path, entry: str) -> str:
    """``location`` if it names a file of the zip (or a cell of the entry) and a line, else ""."""
    match = _LOCATION.match(location)
    if match is None:
        return ""
    file = match["file"]
    cell = _CELL.match(file)
    if cell is not None:
        return location if cell["entry"] == entry else ""
    return location if _is_zip_file(root, file) else ""


def location_parts(location: str) -> tuple[str, str, str]:
    """A location ``source_location`` let through, as (file, code cell or "", line): the
    words around them are the message's, so they are translated with it."""
    match = _LOCATION.match(location)
    if match is None:
        return "", "", ""
    cell = _CELL.match(match["file"])
    if cell is not None:
        return cell["entry"], cell["cell"], match["line"]
    return match["file"], "", match["line"]


def _is_zip_file(root: Path, relative: str) -> bool:
    parts = relative.split("/")
    if relative.startswith("/") or any(p in ("", ".", "..") for p in parts):
        return False
    try:
        path = root.joinpath(*parts)
        return path.is_file() and not path.is_symlink()
    except (OSError, ValueError):
        return False


def module_name(name: str, root: Path) -> str:
    """``name`` if it is a plausible module name written in the zip's own files, else "".

    Any file counts: a pickle names the modules of its classes (``common.layers``), a
    notebook its imports. The search is bounded by ``MAX_SEARCH_BYTES``.
    """
    if not _MODULE.match(name):
        return ""
    # No boundary before the name: a protocol-3 pickle writes it right after an opcode.
    word = re.compile(re.escape(name.encode()) + rb"(?![A-Za-z0-9_])")
    return name if _written_in(root, word, len(name)) else ""


def _written_in(root: Path, word: re.Pattern[bytes], length: int) -> bool:
    budget = MAX_SEARCH_BYTES
    try:
        # Sources first: that is where an import is written.
        paths = sorted(root.rglob("*"), key=lambda p: (p.suffix not in SOURCE_SUFFIXES, str(p)))
    except OSError:
        return False
    for path in paths[:MAX_SEARCH_FILES]:
        try:
            if path.is_symlink() or not path.is_file():
                continue
            with path.open("rb") as f:
                tail = b""
                while budget > 0 and (chunk := f.read(min(CHUNK_BYTES, budget))):
                    budget -= len(chunk)
                    if word.search(tail + chunk):
                        return True
                    tail = chunk[-length:]
        except OSError:
            continue
        if budget <= 0:
            break
    return False


def exit_status(value: object) -> int | None:
    """An exit status a learner may see: an int 0-255, else None."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if 0 <= value <= 255 else None


def rounded(value: float | None, digits: int = DIGITS) -> float | None:
    """A number learner code chose, as shown: rounded, None when not finite."""
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)
