"""Find which file of an extracted submission to run, and under which contract.

Learner code is never executed or imported here: notebooks are read as JSON and code is
only parsed with ``ast``. IPython magics (``%load_ext``, ``!pip``) are neutralised
before parsing and cells that still do not parse are skipped, because a real notebook
routinely contains both. The verified contract (``predict(test_data)`` defined at the
top level) wins over the legacy one (``func_predict`` and ``main``), and exact file
names win over the variants learners actually upload (``submit_katakana-Copy1.ipynb``,
``Submit_Katakana.ipynb``).
"""

from __future__ import annotations

import ast
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from scorer.errors import ErrorClass, ScoringError, gettext_noop

MB = 1 << 20
# Notebooks carry their outputs (plots, printed arrays); 20 MB is far above a cleared one.
MAX_NOTEBOOK_BYTES = 20 * MB
MAX_SOURCE_BYTES = 5 * MB
NOTEBOOK = "submit_katakana.ipynb"
VERIFIED_SCRIPTS = ("submit_katakana.py", "submission.py")
LEGACY_SCRIPTS = ("submit_katakana.py",)
# Cell magics whose body is ordinary Python; other cell magics (%%bash, %%writefile)
# hold something else and their cells are skipped.
_PYTHON_CELL_MAGICS = frozenset({"time", "timeit", "capture", "prun", "debug"})
_REPAIR_ATTEMPTS = 20
_LISTED_FUNCTIONS = 8
_LISTED_FILES = 20

MESSAGES: dict[str, str] = {
    "no_entry_point": gettext_noop(
        "No entry point was found: expected submit_katakana.ipynb defining "
        "predict(test_data), or func_predict and main. Found: %(found)s."
    ),
    "entry_ambiguous": gettext_noop(
        "Several files could be the entry point: %(found)s. Keep only one, or name it "
        "submit_katakana.ipynb."
    ),
    "entry_too_large": gettext_noop(
        "%(entry)s is %(size_mb)s MB, over the %(limit_mb)s MB limit. Clear its outputs "
        "and save it again."
    ),
    "entry_unreadable": gettext_noop(
        "%(entry)s is not a valid notebook and cannot be read. Save it again from Jupyter."
    ),
    "entry_syntax_error": gettext_noop("%(entry)s has a syntax error at line %(line)s."),
    "entry_too_complex": gettext_noop(
        "%(entry)s is too large or too deeply nested for the server to read. Keep only the "
        "code scoring needs: load large arrays from .npy files instead of writing them in code."
    ),
    "entry_check_limit": gettext_noop(
        "The code in the zip could not be checked within the server's limits (%(seconds)s "
        "seconds, %(memory_mb)s MB): it is unusually large or deeply nested. Keep only the "
        "code scoring needs: load large arrays from .npy files instead of writing them in code."
    ),
}


@dataclass(frozen=True)
class EntryPoint:
    contract: Literal["verified", "legacy"]
    # Relative to the submission root, POSIX.
    path: str
    kind: Literal["ipynb", "py"]
    # Why this file was chosen, for logs and instructors.
    reason: str


@dataclass
class _Scan:
    """What one file defines at its top level, as far as parsing can tell."""

    path: str
    kind: Literal["ipynb", "py"]
    names: set[str] = field(default_factory=set)
    functions: set[str] = field(default_factory=set)
    # False when ``predict`` exists but cannot be called with one argument.
    predict_takes_one: bool = True
    problem: ScoringError | None = None

    @property
    def verified(self) -> bool:
        return "predict" in self.names and self.predict_takes_one

    @property
    def legacy(self) -> bool:
        return {"func_predict", "main"} <= self.names


def _error(code: str, **params: Any) -> ScoringError:
    return ScoringError(ErrorClass.NO_ENTRY_POINT, code, MESSAGES[code], params)


def detect_entry(root: Path) -> EntryPoint:
    """Choose the entry point of the submission extracted at ``root``."""
    root = Path(root)
    top = _top_level_files(root)
    scans: dict[str, _Scan] = {}

    def scan(name: str) -> _Scan:
        if name not in scans:
            scans[name] = scan_file(root, name)
        return scans[name]

    notebook = _exact(top, NOTEBOOK)
    tiers: list[tuple[Literal["verified", "legacy"], list[str], str]] = [
        ("verified", [notebook] if notebook else [], "exact"),
        ("verified", [n for s in VERIFIED_SCRIPTS if (n := _exact(top, s))], "exact"),
        ("verified", _variants(top), "variant"),
        ("legacy", [notebook] if notebook else [], "exact"),
        ("legacy", [n for s in LEGACY_SCRIPTS if (n := _exact(top, s))], "exact"),
        ("legacy", _variants(top), "variant"),
    ]
    for contract, names, tier in tiers:
        fitting = [n for n in names if getattr(scan(n), contract)]
        if not fitting:
            continue
        if tier == "variant":
            fitting = _prefer_notebooks(fitting)
            if len(fitting) > 1:
                raise _error("entry_ambiguous", found=", ".join(fitting))
        chosen = scan(fitting[0])
        return EntryPoint(contract, chosen.path, chosen.kind, _reason(chosen, contract, tier))
    # Nothing fits: a candidate we could not read explains that better than a list.
    for scanned in scans.values():  # insertion order is priority order
        if scanned.problem is not None:
            raise scanned.problem
    raise _error("no_entry_point", found="; ".join(list_candidates(root)) or "-")


def list_candidates(root: Path) -> list[str]:
    """Describe the notebooks and scripts at the top of ``root`` (and any submit
    notebook one folder down), e.g. ``submit_katakana.ipynb [func_predict, main]``."""
    root = Path(root)
    lines = []
    top = _top_level_files(root)
    ordered = sorted(n for n in top if n.endswith(".ipynb")) + sorted(
        n for n in top if n.endswith(".py")
    )
    for name in ordered[:_LISTED_FILES]:
        found = scan_file(root, name)
        if found.problem is not None:
            lines.append(f"{name} [{found.problem.code}]")
        else:
            functions = sorted(found.functions)
            shown = functions[:_LISTED_FUNCTIONS] + (
                ["..."] if len(functions) > _LISTED_FUNCTIONS else []
            )
            lines.append(f"{name} [{', '.join(shown)}]")
    lines.extend(_nested_notebooks(root))
    return lines


def scan_file(root: Path, name: str) -> _Scan:
    """Parse one top-level file (notebook or script) without running it."""
    kind: Literal["ipynb", "py"] = "ipynb" if name.lower().endswith(".ipynb") else "py"
    found = _Scan(name, kind)
    path = root / name
    limit = MAX_NOTEBOOK_BYTES if kind == "ipynb" else MAX_SOURCE_BYTES
    size = path.stat().st_size
    if size > limit:
        found.problem = _error(
            "entry_too_large", entry=name, size_mb=f"{size / MB:.0f}", limit_mb=limit // MB
        )
        return found
    data = path.read_bytes()
    if kind == "py":
        try:
            modules = [ast.parse(data)]
        except SyntaxError as exc:
            found.problem = _error("entry_syntax_error", entry=name, line=exc.lineno or 0)
            return found
        except ValueError:  # null bytes
            found.problem = _error("entry_syntax_error", entry=name, line=0)
            return found
        except (RecursionError, MemoryError):
            found.problem = _error("entry_too_complex", entry=name)
            return found
    else:
        try:
            sources = list(notebook_code_cells(json.loads(data)))
            parsed = [parse_tolerant(cell) for cell in sources]
        except (RecursionError, MemoryError):
            found.problem = _error("entry_too_complex", entry=name)
            return found
        except ValueError:
            found.problem = _error("entry_unreadable", entry=name)
            return found
        modules = [module for module in parsed if module is not None]
    for module in modules:
        _collect(module.body, found)
    return found


# --- notebooks ------------------------------------------------------------------------


def notebook_code_cells(notebook: Any) -> Iterator[str]:
    """Yield the Python of each code cell, magics neutralised (nbformat 4, and 3)."""
    if not isinstance(notebook, dict):
        raise ValueError("a notebook is a JSON object")
    cells = notebook.get("cells")
    if cells is None and isinstance(notebook.get("worksheets"), list):
        cells = [
            cell
            for sheet in notebook["worksheets"]
            if isinstance(sheet, dict)
            for cell in sheet.get("cells", [])
        ]
    if not isinstance(cells, list):
        raise ValueError("a notebook has a list of cells")
    for cell in cells:
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        source = cell.get("source", cell.get("input", ""))
        if isinstance(source, list):
            source = "".join(part for part in source if isinstance(part, str))
        if isinstance(source, str):
            python = neutralise_magics(source)
            if python is not None:
                yield python


def neutralise_magics(source: str) -> str | None:
    """Replace ``%``/``!`` lines with ``pass`` at the same indent; None for non-Python
    cell magics. Keeping the indent keeps ``if``-blocks around ``!pip`` valid."""
    lines = source.splitlines()
    first = lines[0].strip() if lines else ""
    if first.startswith("%%"):
        words = first[2:].split()
        if not words or words[0] not in _PYTHON_CELL_MAGICS:
            return None
        lines = lines[1:]
    out = []
    for line in lines:
        body = line.lstrip()
        if body.startswith(("%", "!")):
            line = line[: len(line) - len(body)] + "pass"
        out.append(line)
    return "\n".join(out)


def parse_tolerant(code: str) -> ast.Module | None:
    """Parse a cell, replacing each line that breaks the parse by ``pass`` (IPython-only
    syntax such as ``files = !ls`` or ``np.load?``); None when that does not help.

    RecursionError and MemoryError propagate: a cell too big to parse is not a cell
    without Python, and skipping it would turn "too complex" into "no entry point"."""
    lines = code.split("\n")
    for _ in range(_REPAIR_ATTEMPTS):
        try:
            return ast.parse("\n".join(lines))
        except SyntaxError as exc:
            number = exc.lineno
            if not number or number > len(lines):
                return None
            line = lines[number - 1]
            replacement = line[: len(line) - len(line.lstrip())] + "pass"
            if line == replacement:
                return None
            lines[number - 1] = replacement
        except ValueError:
            return None
    return None


# --- what a module defines ------------------------------------------------------------


def _collect(body: list[ast.stmt], found: _Scan) -> None:
    """Record names bound at module level, looking inside if/try/with/for blocks
    (``try: import x`` guards are common) but never inside functions or classes."""
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            _bind(found, node.name, node.args)
            found.functions.add(node.name)
            continue
        if isinstance(node, ast.ClassDef):
            _bind(found, node.name, None)
            continue
        if isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            args = node.value.args if isinstance(node.value, ast.Lambda) else None
            for target in targets:
                for name_node in ast.walk(target):
                    if isinstance(name_node, ast.Name):
                        _bind(found, name_node.id, args)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                _bind(found, (alias.asname or alias.name).split(".")[0], None)
        for block in ("body", "orelse", "finalbody", "handlers"):
            for child in getattr(node, block, None) or []:
                if isinstance(child, ast.ExceptHandler):
                    _collect(child.body, found)
                elif isinstance(child, ast.stmt):
                    _collect([child], found)


def _bind(found: _Scan, name: str, args: ast.arguments | None) -> None:
    found.names.add(name)
    if name == "predict":
        # The last binding wins, as it would when the notebook runs top to bottom.
        found.predict_takes_one = args is None or _callable_with_one(args)


def _callable_with_one(args: ast.arguments) -> bool:
    positional = args.posonlyargs + args.args
    required = len(positional) - len(args.defaults)
    required_keywords = sum(default is None for default in args.kw_defaults)
    reachable = len(positional) >= 1 or args.vararg is not None
    return required <= 1 and required_keywords == 0 and reachable


# --- file names -----------------------------------------------------------------------


def _top_level_files(root: Path) -> list[str]:
    with os.scandir(root) as entries:
        return sorted(e.name for e in entries if e.is_file(follow_symlinks=False))


def _exact(names: list[str], wanted: str) -> str | None:
    """The file named ``wanted``, or its only case-insensitive match."""
    if wanted in names:
        return wanted
    matches = [n for n in names if n.lower() == wanted]
    return matches[0] if len(matches) == 1 else None


def _variants(names: list[str]) -> list[str]:
    exact = {NOTEBOOK, *VERIFIED_SCRIPTS}
    return [
        n
        for n in names
        if "submit" in n.lower()
        and n.lower().endswith((".ipynb", ".py"))
        and n.lower() not in exact
    ]


def _prefer_notebooks(names: list[str]) -> list[str]:
    notebooks = [n for n in names if n.lower().endswith(".ipynb")]
    return notebooks or names


def _nested_notebooks(root: Path) -> list[str]:
    """Submit notebooks one folder down: the usual sign of a zip made one level too high."""
    found = []
    with os.scandir(root) as entries:
        folders = sorted(e.name for e in entries if e.is_dir(follow_symlinks=False))
    for folder in folders[:_LISTED_FILES]:
        for name in _top_level_files(root / folder):
            if "submit" in name.lower() and name.lower().endswith(".ipynb"):
                found.append(f"{folder}/{name}")
    return found[:_LISTED_FILES]


def _reason(found: _Scan, contract: str, tier: str) -> str:
    what = "predict" if contract == "verified" else "func_predict and main"
    if tier == "variant":
        return f"{found.path} is the only submit-like file defining {what}"
    return f"{found.path} defines {what}"
