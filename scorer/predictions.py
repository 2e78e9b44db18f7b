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

from scorer.errors import ErrorClass, ScoringError, gettext_noop

N_CLASSES = 15
PREDICTIONS_FILE = "predictions.npy"
RESULT_FILE = "result.json"
DECOY_FILE = "decoy.json"
DETAIL_CAP = 16_000
PARAM_TEXT_CAP = 300
CODE_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")

MSG_NOT_REGULAR = gettext_noop("Your code replaced the output file %(file)s with a non-file.")
MSG_MISSING = gettext_noop("No %(file)s was written: the run ended before the harness finished.")
MSG_TOO_LARGE = gettext_noop("The output file %(file)s is larger than %(limit)s bytes.")
MSG_BAD_PREDICTIONS = gettext_noop(
    "The predictions have the wrong form: expected %(expected)s, got %(got)s."
)
MSG_BAD_RESULT = gettext_noop("The run's result file is not valid: %(got)s.")


def _wrong(code: str, expected: str, got: str) -> ScoringError:
    return ScoringError(
        ErrorClass.WRONG_OUTPUT,
        code,
        MSG_BAD_PREDICTIONS,
        {"expected": expected, "got": got},
        detail=f"expected {expected}, got {got}",
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


def read_predictions(out_dir: Path, n: int, *, max_bytes: int = 16 << 20) -> np.ndarray:
    """The harness's predictions: int64 (n,) class ids 0-14 or float64 (n, 15) finite scores."""
    data = read_capped(Path(out_dir), PREDICTIONS_FILE, max_bytes)
    if data is None:
        raise ScoringError(
            ErrorClass.WRONG_OUTPUT,
            "predictions_missing",
            MSG_MISSING,
            {"file": PREDICTIONS_FILE},
            detail="no predictions.npy in the out folder",
        )
    expected = f"int64 ({n},) class ids or float64 ({n}, {N_CLASSES}) scores"
    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise _wrong("predictions_unreadable", expected, f"not a plain .npy ({exc})"[:200]) from exc
    if not isinstance(array, np.ndarray):
        raise _wrong("predictions_unreadable", expected, type(array).__name__)
    shape = tuple(array.shape)
    if array.dtype.kind == "i" and shape == (n,):
        if n and (array.min() < 0 or array.max() >= N_CLASSES):
            got = f"class ids from {array.min()} to {array.max()}"
            raise _wrong("predictions_out_of_range", "class ids 0-14", got)
        return array.astype(np.int64)
    if array.dtype.kind == "f" and shape == (n, N_CLASSES):
        if not np.isfinite(array).all():
            raise _wrong("predictions_not_finite", expected, "NaN or infinite scores")
        return array.astype(np.float64)
    raise _wrong("predictions_wrong_shape", expected, f"{array.dtype} {shape}")


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
    try:
        raw = json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError):
        return None
    return raw if isinstance(raw, dict) else None


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
    error = raw.get("error")
    clean["error"] = error[:PARAM_TEXT_CAP] if isinstance(error, str) else None
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
    for key in ("setup", "predict"):
        value = seconds.get(key, 0.0)
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not (math.isfinite(value) and value >= 0)
        ):
            raise _bad_result(f"seconds.{key} is not a duration")
        clean_seconds[key] = float(value)
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

# English msgids per harness code; the harness itself never writes learner-facing text.
HARNESS_MESSAGES: dict[str, str] = {
    "module_not_found": gettext_noop(
        "Your code imports the module '%(module)s', which is neither in your zip nor in "
        "the scoring environment."
    ),
    "exception": gettext_noop("Your code raised %(exception)s (%(location)s)."),
    "system_exit": gettext_noop("Your code called sys.exit(%(exit_code)s)."),
    "memory_error": gettext_noop("Your code ran out of memory (MemoryError)."),
    "predict_missing": gettext_noop("The notebook defines no function predict(test_data)."),
    "entry_missing": gettext_noop("The entry point file was not found in the zip."),
    "predict_not_array": MSG_BAD_PREDICTIONS,
    "predict_wrong_type": MSG_BAD_PREDICTIONS,
    "predict_wrong_shape": MSG_BAD_PREDICTIONS,
    "predict_wrong_length": MSG_BAD_PREDICTIONS,
    "predict_not_finite": MSG_BAD_PREDICTIONS,
    "predict_not_integer": MSG_BAD_PREDICTIONS,
    "predict_out_of_range": MSG_BAD_PREDICTIONS,
    "predict_mixed_kinds": MSG_BAD_PREDICTIONS,
}
MSG_HARNESS_OTHER = gettext_noop("The run failed (%(code)s).")


def result_error(result: dict[str, Any]) -> ScoringError | None:
    """The ScoringError a validated result.json reports, or None when ``ok``.

    An empty ``result`` (no result.json) gives LEARNER_EXCEPTION ``result_missing``.

    Note that learner code can write result.json itself, including an ``infrastructure``
    verdict (not charged): the caller's retry ceiling bounds that abuse.
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
    code = result["code"] or "unknown"
    params = dict(result["params"])
    message = HARNESS_MESSAGES.get(code, MSG_HARNESS_OTHER)
    if message is MSG_HARNESS_OTHER:
        params["code"] = code
    if message is MSG_BAD_PREDICTIONS:
        params.setdefault("expected", "")
        params.setdefault("got", "")
    return ScoringError(
        ErrorClass(result["error_class"]), code, message, params, detail=result["detail"]
    )
