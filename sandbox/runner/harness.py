"""In-sandbox harness: execute a learner's entry point and write plain result files.

Runs inside the sandbox with the image's own python and depends only on the stdlib,
numpy and IPython; it imports nothing from our packages and holds no secrets. Learner
code runs in this very process, so nothing written here is trusted by the host: the
host reads ``result.json`` and ``predictions.npy`` with a strict, size-capped reader
after the sandbox is gone.

    python3 harness.py --contract verified|legacy --entry REL_PATH \
        --batch-size 500 --data PATH --out DIR        (cwd = the submission folder)

* verified: execute the entry, then call ``predict(batch)`` per batch and write
  ``predictions.npy`` (int64 (N,) class ids or float64 (N, 15) scores, no pickle).
* legacy: execute the entry top to bottom; the server's ``util.py`` prints the
  ``Test loss:`` / ``Test accuracy:`` lines and writes ``decoy.json``.

``result.json`` is always written. Exit status: 0 ok, 1 learner failure, 2 harness or
data problem (infrastructure).

Warm mode (``sandbox/warm.py``), for a container started before its submission exists:

    python3 harness.py --wait CONTROL_DIR [--preload numpy,IPython,torch]

imports the frameworks, prints ``WARM_READY`` to stderr, then waits for
``CONTROL_DIR/job.json`` (``{"argv": [...], "cwd": "..."}``, written by the host into a
directory the sandbox can only read) and runs that one job as if it had been started as
``python3 ARGV...`` in ``cwd``. The process exits after the job: one container, one job.
"""

from __future__ import annotations

import argparse
import functools
import importlib.abc
import importlib.util
import json
import linecache
import os
import re
import sys
import tempfile
import time
import traceback
import types
from pathlib import Path
from typing import Any

N_CLASSES = 15
IMAGE_SHAPE = (1, 28, 28)
TRACEBACK_LINES = 40
HARNESS_FILE = os.path.abspath(__file__)
HARNESS_DIR = os.path.dirname(HARNESS_FILE)
# The in-sandbox path of the submission; shortened in tracebacks like the real cwd.
SANDBOX_SUBMISSION = "/work/submission/"
WARM_READY = "[harness] warm: ready"
JOB_FILE = "job.json"
JOB_POLL_SECONDS = 0.005
TRAIN_PREDICTIONS = "train_predictions.npy"
# What torch and TensorFlow say when code insists on a GPU that is not there (CPU build,
# no driver, no device, a CUDA-saved tensor loaded without map_location on a CPU host).
CUDA_MISSING_MARKERS = (
    "Torch not compiled with CUDA enabled",
    "Found no NVIDIA driver",
    "No CUDA GPUs are available",
    "Attempting to deserialize object on a CUDA device",
    "CUDA driver initialization failed",
)


class HarnessFailure(Exception):
    """A verdict found by the harness itself (wrong output, missing predict, bad data)."""

    def __init__(self, error_class: str, code: str, detail: str, **params: Any) -> None:
        super().__init__(detail)
        self.error_class = error_class
        self.code = code
        self.detail = detail
        self.params = params


def log(message: str) -> None:
    # stderr only, and never any test data: stdout belongs to the learner (legacy score lines).
    print(f"[harness] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- paths


def shorten_paths(text: str) -> str:
    """Replace sandbox and host paths with short relative ones (nothing host-specific leaks)."""
    prefixes = {os.getcwd().rstrip("/") + "/": "", SANDBOX_SUBMISSION: "", HARNESS_DIR + "/": ""}
    real = os.path.realpath(os.getcwd()).rstrip("/") + "/"
    prefixes[real] = ""
    for prefix in sorted(prefixes, key=len, reverse=True):
        text = text.replace(prefix, prefixes[prefix])
    text = re.sub(r"[^\s\"']*/(site|dist)-packages/", "<site-packages>/", text)
    return re.sub(r"[^\s\"']*/lib/python3\.\d+/", "<python>/", text)


def format_traceback(exc: BaseException) -> str:
    """The last TRACEBACK_LINES lines of the traceback, without the harness's own frames."""
    te = traceback.TracebackException.from_exception(exc)
    for part in _chain(te):
        kept = [f for f in part.stack if os.path.abspath(f.filename) != HARNESS_FILE]
        part.stack = traceback.StackSummary.from_list(kept)
    lines = "".join(te.format()).splitlines()
    return shorten_paths("\n".join(lines[-TRACEBACK_LINES:]))


def _chain(te: traceback.TracebackException) -> list[traceback.TracebackException]:
    seen: list[traceback.TracebackException] = []
    todo = [te]
    while todo:
        part = todo.pop()
        if any(part is s for s in seen):
            continue
        seen.append(part)
        todo.extend(p for p in (part.__cause__, part.__context__) if p is not None)
    return seen


def last_learner_location(exc: BaseException) -> str:
    """``file, line N`` of the innermost frame outside the harness and site-packages."""
    frames = traceback.extract_tb(exc.__traceback__)
    for frame in reversed(frames):
        name = os.path.abspath(frame.filename)
        if name == HARNESS_FILE or "-packages" in name or "/lib/python3" in name:
            continue
        return shorten_paths(f"{frame.filename}, line {frame.lineno}")
    return ""


def classify_exception(exc: BaseException) -> HarnessFailure:
    """Map an exception raised by learner code to an error class, code and params."""
    detail = format_traceback(exc)
    missing = getattr(exc, "name", None)
    if isinstance(exc, ModuleNotFoundError) or (
        isinstance(exc, ImportError) and missing and "No module named" in str(exc)
    ):
        return HarnessFailure("missing_module", "module_not_found", detail, module=missing or "")
    if isinstance(exc, (AssertionError, RuntimeError)) and any(
        marker in str(exc) for marker in CUDA_MISSING_MARKERS
    ):
        return HarnessFailure("learner_exception", "cuda_unavailable", detail)
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        # OutOfMemoryError: torch.cuda's, a RuntimeError subclass, matched by name (no torch here).
        return HarnessFailure("memory_limit", "memory_error", detail)
    if isinstance(exc, SystemExit):
        code = exc.code if isinstance(exc.code, int) and not isinstance(exc.code, bool) else None
        return HarnessFailure("learner_exception", "system_exit", detail, exit_code=code)
    # The class's MRO, not its name: the host shows the first builtin (or well-known)
    # class in it, never a name the learner chose (scorer/taint.py).
    mro = " ".join(f"{c.__module__}.{c.__qualname__}" for c in type(exc).__mro__)
    location = last_learner_location(exc)
    return HarnessFailure(
        "learner_exception", "exception", detail, exception_mro=mro[:300], location=location
    )


# --------------------------------------------------------------------------- executing the entry


def new_main_module(file: str | None) -> types.ModuleType:
    """A fresh module registered as ``__main__`` so classes pickled from ``__main__`` load."""
    module = types.ModuleType("__main__")
    module.__dict__["__builtins__"] = __builtins__
    if file is not None:
        module.__file__ = file
    sys.modules["__main__"] = module
    return module


def run_source(source: str, filename: str, namespace: dict[str, Any]) -> None:
    # Registering the source lets tracebacks show the learner's lines for notebook cells.
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec"), namespace)


def run_python_entry(entry: Path) -> types.ModuleType:
    module = new_main_module(str(entry.resolve()))
    run_source(entry.read_text(encoding="utf-8"), str(entry), module.__dict__)
    return module


def notebook_code_cells(entry: Path) -> list[str]:
    """The code cells' sources, nbformat 4 (``cells``/``source``) and 3
    (``worksheets``/``input``), as ``scorer.entry.notebook_code_cells`` reads them (a
    test keeps the two in step: the harness cannot import the scorer)."""
    notebook = json.loads(entry.read_text(encoding="utf-8"))
    raw = notebook.get("cells")
    if raw is None and isinstance(notebook.get("worksheets"), list):
        raw = [
            cell
            for sheet in notebook["worksheets"]
            if isinstance(sheet, dict)
            for cell in sheet.get("cells", [])
        ]
    cells = []
    for cell in raw if isinstance(raw, list) else []:
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        source = cell.get("source", cell.get("input", ""))
        if isinstance(source, list):
            source = "".join(part for part in source if isinstance(part, str))
        cells.append(source if isinstance(source, str) else "")
    return cells


def make_shell(module: types.ModuleType) -> Any:
    """An IPython shell whose user module is ``module`` (IPython registers it as __main__)."""
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.text import SList
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.enabled = False
    shell = InteractiveShell.instance(config=config, user_module=module)
    sys.modules["__main__"] = module

    # '!cmd' and %pip would hang on a network-less sandbox or install nothing useful:
    # skip them deterministically and say so on stderr.
    def skip_system(cmd: str, *args: Any, **kwargs: Any) -> None:
        log(f"shell command not run: {cmd[:200]}")

    def skip_getoutput(cmd: str, *args: Any, **kwargs: Any) -> SList:
        skip_system(cmd)
        return SList()

    def skip_magic(line: str = "", cell: str | None = None) -> None:
        log(f"magic not run: {line[:200]}")

    def matplotlib_magic(line: str = "") -> None:
        # Any GUI or inline backend is meaningless here; keep the non-GUI Agg backend.
        try:
            import matplotlib

            matplotlib.use("Agg")
        except ImportError:
            pass

    shell.system = skip_system  # type: ignore[method-assign]
    shell.getoutput = skip_getoutput  # type: ignore[method-assign]
    for name in ("pip", "conda", "mamba", "sx", "system"):
        shell.register_magic_function(skip_magic, "line", name)  # type: ignore[arg-type]
    shell.register_magic_function(matplotlib_magic, "line", "matplotlib")  # type: ignore[arg-type]
    return shell


def run_notebook_entry(entry: Path) -> types.ModuleType:
    module = new_main_module(None)
    shell = make_shell(module)
    for index, source in enumerate(notebook_code_cells(entry)):
        if not source.strip():
            continue
        code = shell.transform_cell(source)
        run_source(code, f"{entry}[code cell {index + 1}]", module.__dict__)
    return module


def run_entry(entry: Path) -> types.ModuleType:
    """Execute the entry as ``__main__``; ``sys.exit(0)`` just ends it early, as in a kernel."""
    sys.argv = [str(entry)]
    try:
        if entry.suffix == ".ipynb":
            return run_notebook_entry(entry)
        return run_python_entry(entry)
    except SystemExit as exc:
        if exc.code not in (None, 0):
            raise
        return sys.modules["__main__"]  # type: ignore[return-value]


# --------------------------------------------------------------------------- verified contract


def load_test_data(path: str) -> Any:
    import numpy as np

    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise HarnessFailure("infrastructure", "data_unreadable", f"{type(exc).__name__}") from exc
    if data.ndim != 4 or tuple(data.shape[1:]) != IMAGE_SHAPE:
        raise HarnessFailure("infrastructure", "data_bad_shape", f"test data shape {data.shape}")
    return data.astype(np.float64, copy=False)


def as_array(output: Any) -> Any:
    """Turn a predict() result into a numpy array; torch tensors may live on a GPU."""
    import numpy as np

    for method in ("detach", "cpu", "numpy"):
        if type(output).__module__.startswith(("torch", "tensorflow")) and hasattr(output, method):
            output = getattr(output, method)()
    try:
        return np.asarray(output)
    except Exception as exc:  # ragged lists and the like
        raise HarnessFailure(
            "wrong_output",
            "predict_not_array",
            "predict output is not an array",
            expected="an array",
            got=type(exc).__name__,
        ) from exc


def check_batch(output: Any, batch_len: int) -> Any:
    """Validate one batch's output; returns int64 (b,) ids or float64 (b, 15) scores."""
    import numpy as np

    arr = as_array(output)
    expected = f"shape ({batch_len},) class ids or ({batch_len}, {N_CLASSES}) scores"

    def wrong(code: str, got: str) -> HarnessFailure:
        return HarnessFailure(
            "wrong_output", code, f"expected {expected}, got {got}", expected=expected, got=got
        )

    if arr.dtype.kind not in "iuf":
        raise wrong("predict_wrong_type", f"dtype {arr.dtype}")
    if arr.ndim not in (1, 2) or (arr.ndim == 2 and arr.shape[1] != N_CLASSES):
        raise wrong("predict_wrong_shape", f"shape {tuple(arr.shape)}")
    if arr.shape[0] != batch_len:
        raise wrong("predict_wrong_length", f"{arr.shape[0]} rows for {batch_len} images")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise wrong("predict_not_finite", "NaN or infinite values")
    if arr.ndim == 2:
        return arr.astype(np.float64)
    if arr.dtype.kind == "f" and not (arr == np.round(arr)).all():
        raise wrong("predict_not_integer", "non-integer class ids")
    if arr.size and (arr.min() < 0 or arr.max() >= N_CLASSES):
        got = f"class ids from {int(arr.min())} to {int(arr.max())}"
        raise HarnessFailure(
            "wrong_output",
            "predict_out_of_range",
            f"expected ids 0-14, got {got}",
            expected=f"class ids 0-14, shape ({batch_len},)",
            got=got,
        )
    return arr.astype(np.int64)


def predict_all(module: types.ModuleType, data: Any, batch_size: int) -> Any:
    import numpy as np

    predict = module.__dict__.get("predict")
    if not callable(predict):
        raise HarnessFailure(
            "no_entry_point",
            "predict_missing",
            "the entry defines no function predict(test_data)",
            function="predict(test_data)",
            entry=os.path.basename(sys.argv[0]),
        )
    n = len(data)
    n_batches = max(1, -(-n // batch_size))
    parts: list[Any] = []
    for i in range(n_batches):
        batch = np.array(data[i * batch_size : (i + 1) * batch_size], dtype=np.float64, copy=True)
        if i % max(1, n_batches // 5) == 0 or i == n_batches - 1:
            log(f"batch {i + 1}/{n_batches}")
        part = check_batch(predict(batch), len(batch))
        if parts and part.ndim != parts[0].ndim:
            got = "scores after class ids" if part.ndim == 2 else "class ids after scores"
            raise HarnessFailure(
                "wrong_output",
                "predict_mixed_kinds",
                f"batches disagree: {got}",
                expected="the same kind of output for every batch",
                got=got,
            )
        parts.append(part)
    return np.concatenate(parts) if n else np.zeros((0,), dtype=np.int64)


def write_predictions(out_dir: Path, predictions: Any, name: str = "predictions.npy") -> None:
    import numpy as np

    tmp = out_dir / f".{name}.tmp"
    with open(tmp, "wb") as f:
        np.save(f, predictions, allow_pickle=False)
    os.replace(tmp, out_dir / name)


def predict_training_set(module: types.ModuleType, args: argparse.Namespace) -> float:
    """The course's public training images through the same predict(): for the learner's
    train-vs-test comparison. Never fails the run: a problem here only leaves the
    training accuracy out (the host notes why). Returns the seconds it took."""
    started = time.monotonic()
    try:
        train = load_test_data(args.train_data)
        write_predictions(Path(args.out), predict_all(module, train, args.batch_size),
                          TRAIN_PREDICTIONS)  # fmt: skip
    except BaseException as exc:  # noqa: BLE001 - the test-set verdict is already decided
        log(f"training set skipped ({type(exc).__name__})")
    return round(time.monotonic() - started, 3)


# --------------------------------------------------------------------------- main


def count_images(path: str) -> int:
    import numpy as np

    try:
        return int(np.load(path, mmap_mode="r", allow_pickle=False).shape[0])
    except Exception:
        return 0


def write_result(out_dir: Path, result: dict[str, Any]) -> None:
    tmp = out_dir / ".result.tmp.json"
    tmp.write_text(json.dumps(result, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, out_dir / "result.json")


# --------------------------------------------------------------------------- models saved on a GPU


def load_on_cpu_by_default(torch: Any) -> None:
    """Without a GPU, ``torch.load(f)`` maps tensors saved on CUDA to the CPU.

    Learners train on a GPU and load with a bare ``torch.load(path)``, which fails on a
    CPU-only worker. Only the default changes: an explicit ``map_location`` is obeyed,
    and with a GPU present nothing changes at all.
    """
    if getattr(torch.load, "_katakana_cpu", False) or torch.cuda.is_available():
        return
    original = torch.load

    @functools.wraps(original)
    def load(f: Any, map_location: Any = None, *args: Any, **kwargs: Any) -> Any:
        return original(f, "cpu" if map_location is None else map_location, *args, **kwargs)

    load._katakana_cpu = True  # type: ignore[attr-defined]
    torch.load = load


class _AfterTorchImport(importlib.abc.MetaPathFinder):
    """Applies ``load_on_cpu_by_default`` when learner code imports torch, and only then:
    importing torch up front would cost every numpy-only run a second."""

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name != "torch":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_patch(module: types.ModuleType) -> None:
            exec_module(module)
            load_on_cpu_by_default(module)

        spec.loader.exec_module = exec_then_patch  # type: ignore[method-assign]
        return spec


def granted_cpus() -> int | None:
    """Whole cores the run's cgroup grants (Docker's --cpus), None when unlimited."""
    try:
        with open("/sys/fs/cgroup/cpu.max") as f:
            quota, period = f.read().split()
        return None if quota == "max" else max(1, -(-int(quota) // int(period)))
    except (OSError, ValueError):
        return None


def set_framework_env() -> None:
    """Environment TensorFlow and Keras read when imported (so before any import).

    Keras 3 picks its backend from KERAS_BACKEND. TensorFlow's C++ start-up notices
    (oneDNN, CPU features) would fill the learner's log on every run. And TensorFlow
    sizes its thread pools by the host's cores, not the run's CPU quota: on a large host
    that is hundreds of threads against the run's pids limit, so they follow the quota.
    """
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    cpus = granted_cpus()
    if cpus is not None:
        os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(cpus))
        os.environ.setdefault("TF_NUM_INTEROP_THREADS", str(min(cpus, 2)))


def prepare_frameworks() -> None:
    set_framework_env()
    if "torch" in sys.modules:  # preloaded by a warm container
        load_on_cpu_by_default(sys.modules["torch"])
    else:
        sys.meta_path.insert(0, _AfterTorchImport())


def prepare_process() -> None:
    os.environ["MPLBACKEND"] = "Agg"
    prepare_frameworks()
    os.environ.setdefault("IPYTHONDIR", tempfile.mkdtemp(prefix="ipython-"))
    # The submission folder comes first, as in the course; the harness folder goes away
    # so a learner module cannot shadow or import it by accident.
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != HARNESS_DIR]
    sys.path.insert(0, os.getcwd())
    sys.stdin = open(os.devnull)  # noqa: SIM115 - lives as long as the process
    # UTF-8 whatever the locale: the legacy size messages are Japanese and the host
    # decodes UTF-8. Line buffering keeps output written before a wall-limit kill.
    sys.stdout.reconfigure(encoding="utf-8", line_buffering=True)  # type: ignore[union-attr]
    sys.stderr.reconfigure(encoding="utf-8", errors="backslashreplace")  # type: ignore[union-attr]


def run(args: argparse.Namespace) -> dict[str, Any]:
    out_dir = Path(args.out)
    os.environ["KATAKANA_OUT"] = str(out_dir)
    result: dict[str, Any] = {
        "ok": False,
        "error_class": None,
        "code": None,
        "params": {},
        "detail": "",
        "entry": args.entry,
        "contract": args.contract,
        "n": 0,
        "seconds": {"setup": 0.0, "predict": 0.0},
    }
    started = time.monotonic()
    try:
        entry = Path(args.entry)
        if not entry.is_file():
            raise HarnessFailure("no_entry_point", "entry_missing", f"no file {args.entry}")
        data = load_test_data(args.data) if args.contract == "verified" else None
        result["n"] = len(data) if data is not None else count_images(args.data)
        try:
            module = run_entry(entry)
        finally:
            result["seconds"]["setup"] = round(time.monotonic() - started, 3)
        if args.contract == "verified":
            predict_started = time.monotonic()
            try:
                predictions = predict_all(module, data, args.batch_size)
            finally:
                result["seconds"]["predict"] = round(time.monotonic() - predict_started, 3)
            write_predictions(out_dir, predictions)
            if args.train_data:
                result["seconds"]["train"] = predict_training_set(module, args)
        result.update(ok=True, code="ok")
    except HarnessFailure as failure:
        result.update(
            error_class=failure.error_class,
            code=failure.code,
            params=failure.params,
            detail=failure.detail,
        )
    except BaseException as exc:  # noqa: BLE001 - every learner failure ends in a verdict
        verdict = classify_exception(exc)
        result.update(
            error_class=verdict.error_class,
            code=verdict.code,
            params=verdict.params,
            detail=verdict.detail,
        )
    return result


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contract", choices=("verified", "legacy"), required=True)
    parser.add_argument("--entry", required=True, help="entry path relative to the cwd")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--data", required=True)
    parser.add_argument("--train-data", help="the public training images (verified contract)")
    parser.add_argument("--out", required=True)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    prepare_process()
    result = run(args)
    write_result(Path(args.out), result)
    if result["ok"]:
        log(f"done in {result['seconds']}")
        return 0
    log(f"failed: {result['error_class']}/{result['code']}")
    return 2 if result["error_class"] == "infrastructure" else 1


# --------------------------------------------------------------------------- warm mode


def preload(modules: list[str]) -> None:
    """Import the frameworks now, so a job's own imports find them in ``sys.modules``."""
    import importlib

    if any(name.split(".")[0] in ("tensorflow", "keras") for name in modules):
        set_framework_env()  # before TensorFlow's import reads it; else the env stays as is
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - an image without torch is fine
            log(f"warm: preload of {name} skipped ({type(exc).__name__})")


def wait_for_job(control_dir: str) -> dict[str, Any]:
    path = os.path.join(control_dir, JOB_FILE)
    # A stat every 5 ms is negligible CPU and keeps the start latency below the noise.
    while not os.path.exists(path):
        time.sleep(JOB_POLL_SECONDS)
    with open(path, encoding="utf-8") as f:
        job = json.load(f)
    if not isinstance(job.get("argv"), list) or not job["argv"]:
        raise ValueError("job.json without argv")
    return job


def run_script(argv: list[str]) -> int:
    """Run ``argv[0]`` as ``python3 ARGV`` would: ``__main__``, its folder on sys.path."""
    import runpy

    script = os.path.abspath(argv[0])
    sys.argv = [script, *argv[1:]]
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != HARNESS_DIR]
    sys.path.insert(0, os.path.dirname(script))
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        print(exc.code, file=sys.stderr)
        return 1
    except BaseException as exc:  # noqa: BLE001 - as the interpreter would: traceback, 1
        te = traceback.TracebackException.from_exception(exc)
        # Drop runpy's and this file's frames: the traceback starts in the script.
        frames = list(te.stack)
        while frames and frames[0].filename != script:
            frames.pop(0)
        te.stack = traceback.StackSummary.from_list(frames)
        print("".join(te.format()), end="", file=sys.stderr)
        return 1
    return 0


def serve_one_job(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--wait", required=True)
    parser.add_argument("--preload", default="numpy,IPython.core.interactiveshell")
    parser.add_argument("--slot", default="", help="the host's token for this container")
    args = parser.parse_args(argv)
    preload([m for m in args.preload.split(",") if m])
    print(WARM_READY, file=sys.stderr, flush=True)
    try:
        job = wait_for_job(args.wait)
        os.chdir(str(job.get("cwd") or "/"))
    except (OSError, ValueError) as exc:
        log(f"warm: bad job ({type(exc).__name__})")
        return 2
    job_argv = [str(a) for a in job["argv"]]
    if os.path.abspath(job_argv[0]) == HARNESS_FILE:
        sys.argv = job_argv
        return main(job_argv[1:])
    return run_script(job_argv)


if __name__ == "__main__":
    # os._exit: learner code may leave non-daemon threads behind; the verdict is written.
    code = serve_one_job(sys.argv[1:]) if "--wait" in sys.argv[1:2] else main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
