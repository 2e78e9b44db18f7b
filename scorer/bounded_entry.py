"""Entry detection in a child process under kernel limits, for the web host.

``detect_entry`` parses learner sources with ``ast``, whose memory and time grow with
the code: a 2.4 MB zip of dense expressions took 10 s and +1.26 GiB inside an upload
request (issue 13). Sizes alone cannot bound that, so the web host parses in a short-
lived child that caps its own address space and CPU time (``RLIMIT_AS``, ``RLIMIT_CPU``)
before reading anything, and the parent kills it at a wall-clock limit. A child that
runs out reports ``entry_too_complex`` for the file it was reading; one killed by the
kernel or the clock gives ``entry_check_limit``. Both are refusals at upload, not
charged. The trade-off: a Python start (~0.1 s) per upload, for a bound that holds
whatever the learner wrote. The child is our own code on an extracted folder; it runs
no learner code, like the parser it wraps.
"""

from __future__ import annotations

import json
import resource
import signal
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

from scorer.entry import MESSAGES, EntryPoint, detect_entry
from scorer.errors import ErrorClass, ScoringError

_PACKAGE_PARENT = str(Path(__file__).resolve().parent.parent)
# Killed by the kernel: SIGXCPU at the CPU limit, SIGKILL past the hard limit or OOM.
_LIMIT_SIGNALS = (-signal.SIGXCPU, -signal.SIGKILL)
_CHILD = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from scorer.bounded_entry import child_main; child_main(sys.argv[2:])"
)


def detect_entry_bounded(root: Path, *, memory_mb: int, cpu_seconds: int) -> EntryPoint:
    """``detect_entry(root)`` in a child with ``memory_mb`` of address space and
    ``cpu_seconds`` of CPU; raises the child's ScoringError, or ``entry_check_limit``."""
    command = [sys.executable, "-I", "-c", _CHILD, _PACKAGE_PARENT, str(root)]
    command += [str(memory_mb), str(cpu_seconds)]
    try:
        run = subprocess.run(
            command, capture_output=True, text=True, timeout=2 * cpu_seconds + 5, check=False
        )
    except subprocess.TimeoutExpired:  # asleep on I/O: the clock, not the CPU limit
        raise _limit_error(memory_mb, cpu_seconds, "wall-clock limit") from None
    if run.returncode in _LIMIT_SIGNALS:
        raise _limit_error(memory_mb, cpu_seconds, f"child ended by signal {-run.returncode}")
    if run.returncode != 0:
        # Our own failure (an import error, a full disk): an infrastructure fault.
        raise RuntimeError(f"entry detection child failed ({run.returncode}): {run.stderr[-2000:]}")
    answer = json.loads(run.stdout)
    if "error" in answer:
        error = answer["error"]
        raise ScoringError(
            ErrorClass(error["error_class"]), error["code"], error["message"], error["params"]
        )
    return EntryPoint(**answer["entry"])


def _limit_error(memory_mb: int, cpu_seconds: int, detail: str) -> ScoringError:
    return ScoringError(
        ErrorClass.NO_ENTRY_POINT,
        "entry_check_limit",
        MESSAGES["entry_check_limit"],
        {"seconds": cpu_seconds, "memory_mb": memory_mb},
        detail=detail,
    )


def child_main(argv: list[str]) -> None:
    root, memory_mb, cpu_seconds = Path(argv[0]), int(argv[1]), int(argv[2])
    memory = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    # Soft limit: SIGXCPU; the hard limit one second later is SIGKILL.
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
    try:
        answer: dict[str, object] = {"entry": asdict(detect_entry(root))}
    except ScoringError as error:
        answer = {"error": _as_json(error)}
    except MemoryError:  # outside a file's parse (listing candidates, say)
        answer = {"error": _as_json(_limit_error(memory_mb, cpu_seconds, "MemoryError"))}
    sys.stdout.write(json.dumps(answer))


def _as_json(error: ScoringError) -> dict[str, object]:
    return {
        "error_class": error.error_class.value,
        "code": error.code,
        "message": error.message,
        "params": error.params,
    }
