"""Which deep-learning frameworks a submission imports, and what kind of worker it needs.

Most of the course writes its network in numpy and needs no GPU; learners who use
PyTorch, TensorFlow or Keras may. The intake records what a zip imports (read from its
``.py`` files and notebook code cells, no code run) and the server routes the
submission to a CPU or a GPU worker by it; a warm sandbox preloads what it imports.

Reading imports is a heuristic, not a guarantee: code can import a framework through
``importlib`` or ``exec``. That only costs speed, never a result: every image can run
every framework (the CPU image has torch and TensorFlow's CPU builds), so a submission
routed to a CPU worker that does reach for a framework still scores, more slowly.
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

# Import name → the framework recorded for it.
FRAMEWORKS: dict[str, str] = {"torch": "torch", "tensorflow": "tensorflow", "keras": "keras"}
# Frameworks that can use a GPU; a submission importing none of them needs only a CPU.
GPU_FRAMEWORKS = frozenset(FRAMEWORKS.values())
CPU, GPU = "cpu", "gpu"
WORKER_KINDS = (CPU, GPU)
# What a warm container imports before its job, per framework (numpy-only runs get the
# base set only: they do not pay torch's memory or TensorFlow's start-up).
BASE_PRELOAD = ("numpy", "IPython.core.interactiveshell")
PRELOAD: dict[str, tuple[str, ...]] = {
    "torch": ("torch",),
    "tensorflow": ("tensorflow",),
    "keras": ("tensorflow", "keras"),
}
# The run's environment variable that names them (read by sandbox/warm.py).
PRELOAD_ENV = "KATAKANA_PRELOAD"
SOURCE_SUFFIXES = (".py", ".ipynb")
# Bounds on what is read: learner files larger than this are not source worth scanning.
MAX_FILE_BYTES = 4 << 20
MAX_TOTAL_BYTES = 32 << 20

_IMPORT = re.compile(
    r"^[ \t]*(?:from[ \t]+(?P<from>[A-Za-z_]\w*)|import[ \t]+(?P<names>[^#\n]+))", re.MULTILINE
)


def frameworks_in_source(text: str) -> set[str]:
    """Frameworks named by ``import X``, ``import X.y as z, W`` or ``from X... import``."""
    found: set[str] = set()
    for match in _IMPORT.finditer(text):
        if match["from"]:
            tops = [match["from"]]
        else:
            tops = [part.strip().split(".")[0].split(" ")[0] for part in match["names"].split(",")]
        found.update(FRAMEWORKS[top] for top in tops if top in FRAMEWORKS)
    return found


def notebook_source(raw: bytes) -> str:
    """The code cells of a notebook (nbformat 3 or 4), or the raw text if it is not JSON."""
    try:
        notebook = json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace").replace("\\n", "\n")
    cells = notebook.get("cells") if isinstance(notebook, dict) else None
    if cells is None and isinstance(notebook, dict):  # nbformat 3: worksheets[].cells[]
        cells = [c for ws in notebook.get("worksheets") or [] for c in ws.get("cells") or []]
    parts = []
    for cell in cells or []:
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        source = cell.get("source", cell.get("input", ""))
        parts.append("".join(source) if isinstance(source, list) else str(source))
    return "\n".join(parts)


def _frameworks_in_files(files: Iterable[tuple[str, bytes]]) -> tuple[str, ...]:
    found: set[str] = set()
    for name, raw in files:
        text = notebook_source(raw) if name.endswith(".ipynb") else raw.decode("utf-8", "replace")
        found |= frameworks_in_source(text)
    return tuple(sorted(found))


def _is_source(name: str) -> bool:
    return name.endswith(SOURCE_SUFFIXES) and "__MACOSX/" not in name


def frameworks_in_folder(folder: Path) -> tuple[str, ...]:
    """Frameworks the source files under ``folder`` import, sorted (an extracted zip)."""

    def files() -> Iterator[tuple[str, bytes]]:
        budget = MAX_TOTAL_BYTES
        for path in sorted(folder.rglob("*")):
            if not _is_source(path.name) or path.is_symlink() or not path.is_file():
                continue
            size = path.stat().st_size
            if size > MAX_FILE_BYTES or size > budget:
                continue
            budget -= size
            yield path.name, path.read_bytes()

    return _frameworks_in_files(files())


def frameworks_in_zip(path: Path) -> tuple[str, ...]:
    """Frameworks the source files of a zip import, sorted; read after the intake passed it."""

    def files() -> Iterator[tuple[str, bytes]]:
        budget = MAX_TOTAL_BYTES
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if info.is_dir() or not _is_source(info.filename):
                    continue
                if info.file_size > MAX_FILE_BYTES or info.file_size > budget:
                    continue
                budget -= info.file_size
                with archive.open(info) as member:
                    yield info.filename, member.read(MAX_FILE_BYTES + 1)[:MAX_FILE_BYTES]

    try:
        return _frameworks_in_files(files())
    except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError):
        return ()


def worker_kind(frameworks: Iterable[str]) -> str:
    """``gpu`` when the submission imports a framework that can use one, else ``cpu``."""
    return GPU if GPU_FRAMEWORKS.intersection(frameworks) else CPU


def preload_modules(frameworks: Iterable[str]) -> tuple[str, ...]:
    """What a warm container should import before this submission's job, in order."""
    modules = list(BASE_PRELOAD)
    for name in sorted(frameworks):
        modules += [m for m in PRELOAD.get(name, ()) if m not in modules]
    return tuple(modules)
