"""Safe reading of what a sandbox left in its ``/out`` folder.

Only call these after the sandbox is gone (container removed, process group killed):
learner code controlled that folder and may have planted symlinks, FIFOs, huge files or
pickles. Every file is opened relative to the out folder with ``O_NOFOLLOW|O_NONBLOCK``
(a FIFO opens at once and is then refused), checked with ``fstat`` to be a regular file,
read with a size cap, and parsed with no pickle and a strict schema. Error messages say
what was expected and what came, never file contents.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import stat
from pathlib import Path
from typing import Any

import numpy as np

from scorer import taint
from scorer.errors import ErrorClass, ScoringError, gettext_noop
from scorer.taint import Provenance

N_CLASSES = 15
PREDICTIONS_FILE = "predictions.npy"
RESULT_FILE = "result.json"
DECOY_FILE = "decoy.json"
LEGACY_CLASSES_FILE = "legacy_classes.npy"
LEGACY_TRAIN_CLASSES_FILE = "legacy_train_classes.npy"
TRAIN_PREDICTIONS_FILE = "train_predictions.npy"
LEGACY_LOSS_FILE = "legacy_loss_terms.npy"
DETAIL_CAP = 16_000
PARAM_TEXT_CAP = 300
CODE_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
# Our JSON files are flat: anything deeper is not ours (and would cost the parser a stack).
JSON_MAX_DEPTH = 4
JSON_MAX_BYTES = 64 << 10
_JSON_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')

MSG_NOT_REGULAR = gettext_noop("Your code replaced the output file %(file)s with a non-file.")
MSG_MISSING = gettext_noop("No %(file)s was written: the run ended before the harness finished.")
MSG_TOO_LARGE = gettext_noop("The output file %(file)s is larger than %(limit)s bytes.")
MSG_BAD_RESULT = gettext_noop("The run's result file is not valid: %(got)s.")


def _wrong(code: str, message_code: str) -> ScoringError:
    return ScoringError(
        ErrorClass.WRONG_OUTPUT, code, WRONG_OUTPUT_MESSAGES[message_code], detail=code
    )


def read_capped(out_dir: Path, name: str, max_bytes: int) -> bytes | None:
    """Bytes of regular file ``out_dir/name``, or None if it does not exist.

    Raises WRONG_OUTPUT for a symlink, FIFO, device or folder, OUTPUT_TOO_LARGE beyond
    ``max_bytes``. The out folder itself is opened with O_NOFOLLOW too.
    """
    dir_fd = os.open(out_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        try:
            fd = os.open(
                name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd
            )
        except FileNotFoundError:
            return None
        except OSError as exc:  # ELOOP: a symlink; others: unreadable special files
            raise ScoringError(
                ErrorClass.WRONG_OUTPUT,
                "output_not_regular",
                MSG_NOT_REGULAR,
                {"file": name},
                detail=f"{name}: {exc.strerror}",
            ) from exc
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise ScoringError(
                    ErrorClass.WRONG_OUTPUT,
                    "output_not_regular",
                    MSG_NOT_REGULAR,
                    {"file": name},
                    detail=f"{name}: mode {stat.filemode(info.st_mode)}",
                )
            if info.st_size > max_bytes:
                raise _too_large(name, max_bytes, info.st_size)
            with os.fdopen(fd, "rb", closefd=False) as f:
                data = f.read(max_bytes + 1)
            if len(data) > max_bytes:  # grew after fstat
                raise _too_large(name, max_bytes, len(data))
            return data
        finally:
            os.close(fd)
    finally:
        os.close(dir_fd)


def _too_large(name: str, limit: int, size: int) -> ScoringError:
    return ScoringError(
        ErrorClass.OUTPUT_TOO_LARGE,
        "output_too_large",
        MSG_TOO_LARGE,
        {"file": name, "limit": limit},
        detail=f"{name}: {size} bytes > {limit}",
    )


NPY_HEADER_CAP = 4096
MSG_UNREADABLE_NPY = gettext_noop(
    "The output file %(file)s is not a plain .npy array of the expected type and shape."
)


Form = tuple[tuple[int, ...], str]  # a shape and the dtype kinds allowed with it


def read_npy(out_dir: Path, name: str, *, forms: list[Form], max_bytes: int) -> np.ndarray | None:
    """A plain .npy file the run left, checked before its data is touched; None if absent.

    The header is parsed with numpy's own bounded reader (no pickle, header size
    capped), then dtype (no objects or fields) and shape against one of ``forms`` and
    the exact byte count are checked, and the array is a read-only view of the bytes: a
    malicious header (nested literals, a huge shape over a few bytes) costs nothing and
    reads as the learner's WRONG_OUTPUT ``output_unreadable``, never a crash here.
    """
    data = read_capped(Path(out_dir), name, max_bytes)
    if data is None:
        return None
    stream = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            header = np.lib.format.read_array_header_1_0(stream, max_header_size=NPY_HEADER_CAP)
        elif version == (2, 0):
            header = np.lib.format.read_array_header_2_0(stream, max_header_size=NPY_HEADER_CAP)
        else:
            raise ValueError(f"npy version {version}")
        found_shape, fortran, dtype = header
        shape = tuple(found_shape)
        if dtype.hasobject or dtype.fields is not None or dtype.itemsize > 8:
            raise ValueError("dtype")
        if not any(shape == s and dtype.kind in kinds for s, kinds in forms):
            raise ValueError("dtype or shape")
        count = math.prod(shape)
        if len(data) - stream.tell() != count * dtype.itemsize:
            raise ValueError("size")
        array = np.frombuffer(data, dtype=dtype, count=count, offset=stream.tell())
        return array.reshape(shape, order="F" if fortran else "C")
    except (ValueError, TypeError, KeyError, SyntaxError, EOFError, OverflowError,
            RecursionError, MemoryError) as exc:  # fmt: skip
        raise ScoringError(
            ErrorClass.WRONG_OUTPUT,
            "output_unreadable",
            MSG_UNREADABLE_NPY,
            {"file": name},
            detail=f"{name}: {type(exc).__name__}",
        ) from exc


def read_predictions(
    out_dir: Path, n: int, *, max_bytes: int = 16 << 20, name: str = PREDICTIONS_FILE
) -> np.ndarray:
    """The harness's predictions: int64 (n,) class ids 0-14 or float64 (n, 15) finite scores.

    ``name``: ``predictions.npy`` (the hidden test set) or ``train_predictions.npy`` (the
    public training set, for the train-vs-test comparison)."""
    forms: list[Form] = [((n,), "iu"), ((n, N_CLASSES), "f")]
    array = read_npy(out_dir, name, forms=forms, max_bytes=max_bytes)
    if array is None:
        raise ScoringError(
            ErrorClass.WRONG_OUTPUT,
            "predictions_missing",
            MSG_MISSING,
            {"file": name},
            detail=f"no {name} in the out folder",
        )
    if array.ndim == 1:
        if n and (array.min() < 0 or array.max() >= N_CLASSES):
            raise _wrong("predictions_out_of_range", "predict_out_of_range")
        return array.astype(np.int64)
    if not np.isfinite(array).all():
        raise _wrong("predictions_not_finite", "predict_not_finite")
    return array.astype(np.float64)


def read_legacy_train_classes(out_dir: Path, n: int) -> np.ndarray | None:
    """The classes recorded on the training set, or None if absent or not all recorded."""
    classes = read_npy(out_dir, LEGACY_TRAIN_CLASSES_FILE, forms=[((n,), "iu")], max_bytes=1 << 20)
    if classes is None or ((classes < 0) | (classes >= N_CLASSES)).any():
        return None
    return classes.astype(np.int64)


def read_legacy_record(out_dir: Path, n: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    """What the label stand-in recorded in a legacy run (``sandbox/runner/legacy_util.py``).

    ``(classes, loss_terms)``: int (n,) with -1 (never compared) and -2 (ambiguous)
    besides classes 0-14, and float (n, 15) log-probabilities or None; ``classes`` is None
    when the file does not exist. Values outside -2..14 read as ambiguous.
    """
    classes = read_npy(out_dir, LEGACY_CLASSES_FILE, forms=[((n,), "iu")], max_bytes=1 << 20)
    if classes is None:
        return None, None
    classes = np.where((classes >= -2) & (classes < N_CLASSES), classes, -2).astype(np.int64)
    terms = read_npy(out_dir, LEGACY_LOSS_FILE, forms=[((n, N_CLASSES), "f")], max_bytes=4 << 20)
    return classes, None if terms is None else terms.astype(np.float64)


# --------------------------------------------------------------------------- result.json

_OPTIONAL_STR = (str, type(None))


def read_result_json(
    out_dir: Path, max_bytes: int = 64 << 10, *, name: str = RESULT_FILE
) -> dict[str, Any]:
    """A JSON file the run left in ``out_dir``, validated; unknown keys are dropped.

    ``name="result.json"`` (default): the harness's verdict. An empty dict when the file
    does not exist (the process died before the harness wrote it: the caller decides
    from the exit status, timeout and OOM flags); ScoringError ``result_invalid`` for a
    malformed one; ``output_not_regular`` / ``output_too_large`` as for predictions.

    ``name="decoy.json"``: the legacy util's decoy record. Anything absent, odd or
    malformed reads as an empty dict, which ``scorer.legacy.judge_decoy`` distrusts.
    """
    if name == DECOY_FILE:
        return _read_decoy(Path(out_dir), min(max_bytes, 4096))
    if name != RESULT_FILE:
        raise ValueError(f"no schema for {name!r}")
    data = read_capped(Path(out_dir), RESULT_FILE, max_bytes)
    if data is None:
        return {}
    raw = _parse_json_object(data)
    if raw is None:
        raise _bad_result("not a JSON object")
    return _validate_result(raw)


def _parse_json_object(data: bytes) -> dict[str, Any] | None:
    if len(data) > JSON_MAX_BYTES or _nesting(data) > JSON_MAX_DEPTH:
        return None
    try:
        raw = json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError, MemoryError):
        return None
    return raw if isinstance(raw, dict) else None


def _nesting(data: bytes) -> int:
    """How deeply brackets nest in JSON ``data`` (strings ignored), without parsing it."""
    depth = deepest = 0
    for token in _JSON_TOKEN.findall(data):
        if token in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        elif token in (b"]", b"}"):
            depth -= 1
    return deepest


def _read_decoy(out_dir: Path, max_bytes: int) -> dict[str, Any]:
    try:
        data = read_capped(out_dir, DECOY_FILE, max_bytes)
    except ScoringError:
        return {}
    raw = _parse_json_object(data) if data is not None else None
    if raw is None:
        return {}
    clean: dict[str, Any] = {}
    for key in ("n", "position"):
        value = raw.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            clean[key] = value
    for key in ("loss", "accuracy", "test_loss", "test_accuracy"):
        value = raw.get(key)
        clean[key] = None
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            clean[key] = float(value)
    clean["error"] = "failed" if raw.get("error") is not None else None
    return clean


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _bad_result(got: str) -> ScoringError:
    return ScoringError(
        ErrorClass.WRONG_OUTPUT,
        "result_invalid",
        MSG_BAD_RESULT,
        {"got": got},
        detail=f"result.json: {got}",
    )


def _field(raw: dict[str, Any], key: str, types: tuple[type, ...]) -> Any:
    value = raw.get(key)
    # bool is an int subclass: an int field must not accept True.
    if (
        key not in raw
        or not isinstance(value, types)
        or (isinstance(value, bool) and bool not in types)
    ):
        raise _bad_result(f"field {key!r} missing or of the wrong type")
    return value


def _validate_result(raw: dict[str, Any]) -> dict[str, Any]:
    ok = _field(raw, "ok", (bool,))
    error_class = _field(raw, "error_class", _OPTIONAL_STR)
    code = _field(raw, "code", _OPTIONAL_STR)
    contract = _field(raw, "contract", (str,))
    n = _field(raw, "n", (int,))
    if error_class is not None and error_class not in {e.value for e in ErrorClass}:
        raise _bad_result("unknown error class")
    if code is not None and not CODE_PATTERN.match(code):
        raise _bad_result("malformed code")
    if contract not in ("verified", "legacy") or n < 0 or ok != (error_class is None):
        raise _bad_result("inconsistent fields")
    seconds = _field(raw, "seconds", (dict,))
    clean_seconds = {}
    for key in ("setup", "predict", "train"):
        if key == "train" and key not in seconds:
            continue  # no training-set pass in this run
        value = seconds.get(key, 0.0)
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not (math.isfinite(value) and value >= 0)
        ):
            raise _bad_result(f"seconds.{key} is not a duration")
        clean_seconds[key] = round(float(value), 1)
    return {
        "ok": ok,
        "error_class": error_class,
        "code": code,
        "params": _clean_params(_field(raw, "params", (dict,))),
        "detail": _field(raw, "detail", (str,))[-DETAIL_CAP:],
        "entry": _field(raw, "entry", (str,))[:PARAM_TEXT_CAP],
        "contract": contract,
        "n": n,
        "seconds": clean_seconds,
    }


def _clean_params(params: dict[str, Any]) -> dict[str, str | int | float | bool]:
    clean: dict[str, str | int | float | bool] = {}
    for key, value in list(params.items())[:16]:
        if not isinstance(key, str) or not CODE_PATTERN.match(key):
            continue
        if isinstance(value, str):
            clean[key] = value[:PARAM_TEXT_CAP]
        elif isinstance(value, bool | int) or (isinstance(value, float) and math.isfinite(value)):
            clean[key] = value
    return clean


# --------------------------------------------------------------------------- harness verdicts

MSG_MODULE = gettext_noop(
    "Your code imports the module '%(module)s', which is neither in your zip nor in "
    "the scoring environment."
)
MSG_MODULE_COMPUTED = gettext_noop(
    "Your code imports a module whose name is not written in your zip's code, and which "
    "is neither in your zip nor in the scoring environment."
)
# Kept for results stored before the location's words were translated.
MSG_EXCEPTION_AT = gettext_noop("Your code raised %(exception)s (%(location)s).")
MSG_EXCEPTION_IN_FILE = gettext_noop("Your code raised %(exception)s (%(file)s, line %(line)s).")
MSG_EXCEPTION_IN_CELL = gettext_noop(
    "Your code raised %(exception)s (%(file)s, code cell %(cell)s, line %(line)s)."
)
MSG_EXCEPTION = gettext_noop("Your code raised %(exception)s.")
MSG_EXIT = gettext_noop("Your code called sys.exit(%(exit_code)s).")
MSG_EXIT_TEXT = gettext_noop("Your code called sys.exit() with a message instead of a number.")
MSG_HARNESS_OTHER = gettext_noop("The run failed (%(code)s).")

# Fixed text per wrong-output code: what came back is described, never shown.
WRONG_OUTPUT_MESSAGES: dict[str, str] = {
    "predict_not_array": gettext_noop(
        "predict(test_data) returned something that is not an array of numbers."
    ),
    "predict_wrong_type": gettext_noop("predict(test_data) returned values that are not numbers."),
    "predict_wrong_shape": gettext_noop(
        "predict(test_data) returned an array of the wrong shape: for a batch of N images it "
        "must return shape (N,) class ids or (N, 15) scores."
    ),
    "predict_wrong_length": gettext_noop(
        "predict(test_data) returned a different number of rows than the images it was given."
    ),
    "predict_not_finite": gettext_noop("predict(test_data) returned NaN or infinite values."),
    "predict_not_integer": gettext_noop(
        "predict(test_data) returned class ids that are not whole numbers."
    ),
    "predict_out_of_range": gettext_noop("predict(test_data) returned class ids outside 0-14."),
    "predict_mixed_kinds": gettext_noop(
        "predict(test_data) returned class ids for some batches and scores for others."
    ),
}

# Every code the harness may report, with the error class the host gives it: the class
# written in result.json is ignored (learner code can write that file itself).
HARNESS_CODES: dict[str, ErrorClass] = {
    "module_not_found": ErrorClass.MISSING_MODULE,
    "exception": ErrorClass.LEARNER_EXCEPTION,
    "system_exit": ErrorClass.LEARNER_EXCEPTION,
    "cuda_unavailable": ErrorClass.LEARNER_EXCEPTION,
    "memory_error": ErrorClass.MEMORY_LIMIT,
    "predict_missing": ErrorClass.NO_ENTRY_POINT,
    "entry_missing": ErrorClass.NO_ENTRY_POINT,
    "data_unreadable": ErrorClass.INFRASTRUCTURE,
    "data_bad_shape": ErrorClass.INFRASTRUCTURE,
    **{code: ErrorClass.WRONG_OUTPUT for code in WRONG_OUTPUT_MESSAGES},
}
FIXED_MESSAGES: dict[str, str] = {
    "cuda_unavailable": gettext_noop(
        "Your code needs a CUDA GPU, and this submission was scored on a computer without "
        "one. Choose the device with torch.device('cuda' if torch.cuda.is_available() "
        "else 'cpu') instead of calling .cuda() unconditionally, and load saved models "
        "with torch.load(path, map_location=device)."
    ),
    "memory_error": gettext_noop("Your code ran out of memory (MemoryError)."),
    "predict_missing": gettext_noop("The notebook defines no function predict(test_data)."),
    "entry_missing": gettext_noop("The entry point file was not found in the zip."),
    **WRONG_OUTPUT_MESSAGES,
}


def result_error(result: dict[str, Any], provenance: Provenance) -> ScoringError | None:
    """The ScoringError a validated result.json reports, or None when ``ok``.

    An empty ``result`` (no result.json) gives LEARNER_EXCEPTION ``result_missing``.
    The error class, message and parameters are the host's: a code outside
    ``HARNESS_CODES`` is ``result_invalid``, and parameters pass ``scorer.taint`` (an
    exception's builtin name, a location in the zip's own files, a module name written
    in the zip, an integer exit status) or are dropped. The run's text stays in
    ``detail``, for instructors and courses that show logs.
    """
    if not result:
        return ScoringError(
            ErrorClass.LEARNER_EXCEPTION,
            "result_missing",
            MSG_MISSING,
            {"file": RESULT_FILE},
            detail="no result.json in the out folder",
        )
    if result["ok"]:
        return None
    code = result["code"] or ""
    if code not in HARNESS_CODES:
        raise _bad_result("unknown code")
    message, params = _learner_message(code, result["params"], provenance)
    return ScoringError(HARNESS_CODES[code], code, message, params, detail=result["detail"])


def _learner_message(
    code: str, raw: dict[str, Any], provenance: Provenance
) -> tuple[str, dict[str, Any]]:
    def text(key: str) -> str:
        value = raw.get(key)
        return value if isinstance(value, str) else ""

    if code in FIXED_MESSAGES:
        return FIXED_MESSAGES[code], {}
    if code == "module_not_found":
        module = taint.module_name(text("module"), provenance.root)
        return (MSG_MODULE, {"module": module}) if module else (MSG_MODULE_COMPUTED, {})
    if code == "exception":
        params = {"exception": taint.exception_name(text("exception_mro"))}
        location = taint.source_location(text("location"), provenance.root, provenance.entry)
        if location:
            file, cell, line = taint.location_parts(location)
            if cell:
                return MSG_EXCEPTION_IN_CELL, {**params, "file": file, "cell": cell, "line": line}
            return MSG_EXCEPTION_IN_FILE, {**params, "file": file, "line": line}
        return MSG_EXCEPTION, params
    if code == "system_exit":
        status = taint.exit_status(raw.get("exit_code"))
        return (MSG_EXIT, {"exit_code": status}) if status is not None else (MSG_EXIT_TEXT, {})
    return MSG_HARNESS_OTHER, {"code": code}
