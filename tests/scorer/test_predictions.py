"""Safe reading of predictions.npy and result.json planted by hostile learner code."""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from scorer.errors import ErrorClass, ScoringError
from scorer.predictions import read_predictions, read_result_json, result_error

N = 20


@pytest.fixture
def out(tmp_path: Path) -> Path:
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


@contextlib.contextmanager
def raises(code: str, error_class: ErrorClass = ErrorClass.WRONG_OUTPUT) -> Iterator[None]:
    with pytest.raises(ScoringError) as caught:
        yield
    assert (caught.value.error_class, caught.value.code) == (error_class, code)


def test_it_reads_class_ids_and_scores(out: Path) -> None:
    ids = np.arange(N) % 15
    np.save(out / "predictions.npy", ids.astype(np.int64))
    assert np.array_equal(read_predictions(out, N), ids)

    scores = np.random.RandomState(0).rand(N, 15)
    np.save(out / "predictions.npy", scores)
    got = read_predictions(out, N)
    assert got.dtype == np.float64 and np.array_equal(got, scores)


def test_it_rejects_a_symlink_even_to_a_valid_file(out: Path, tmp_path: Path) -> None:
    np.save(tmp_path / "real.npy", np.zeros(N, dtype=np.int64))
    (out / "predictions.npy").symlink_to(tmp_path / "real.npy")

    with raises("output_not_regular"):
        read_predictions(out, N)


def test_it_rejects_a_fifo_without_blocking(out: Path) -> None:
    os.mkfifo(out / "predictions.npy")
    outcome: list[BaseException | None] = []

    def read() -> None:
        try:
            read_predictions(out, N)
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001
            outcome.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(5)

    assert not reader.is_alive(), "reading a FIFO blocked"
    assert isinstance(outcome[0], ScoringError) and outcome[0].code == "output_not_regular"


def test_it_rejects_a_directory_in_place_of_the_file(out: Path) -> None:
    (out / "predictions.npy").mkdir()
    with raises("output_not_regular"):
        read_predictions(out, N)


def test_it_refuses_an_oversized_file_before_reading_it(out: Path) -> None:
    np.save(out / "predictions.npy", np.zeros(N, dtype=np.int64))
    with raises("output_too_large", ErrorClass.OUTPUT_TOO_LARGE):
        read_predictions(out, N, max_bytes=100)


def test_it_refuses_a_pickled_object_array(out: Path) -> None:
    np.save(out / "predictions.npy", np.array([object()] * N, dtype=object), allow_pickle=True)
    with raises("predictions_unreadable"):
        read_predictions(out, N)


def test_it_refuses_a_plain_pickle(out: Path) -> None:
    (out / "predictions.npy").write_bytes(pickle.dumps(list(range(N))))
    with raises("predictions_unreadable"):
        read_predictions(out, N)


def test_it_refuses_an_npz_archive(out: Path) -> None:
    with open(out / "predictions.npy", "wb") as f:
        np.savez(f, a=np.zeros(N, dtype=np.int64))
    with raises("predictions_unreadable"):
        read_predictions(out, N)


def test_it_refuses_a_truncated_file(out: Path) -> None:
    np.save(out / "predictions.npy", np.zeros(N, dtype=np.int64))
    data = (out / "predictions.npy").read_bytes()
    (out / "predictions.npy").write_bytes(data[:-8])
    with raises("predictions_unreadable"):
        read_predictions(out, N)


@pytest.mark.parametrize(
    ("array", "code", "got"),
    [
        (np.full((N, 15), np.nan), "predictions_not_finite", "NaN or infinite scores"),
        (np.full((N, 15), np.inf), "predictions_not_finite", "NaN or infinite scores"),
        (np.zeros((N, 10)), "predictions_wrong_shape", "float64 (20, 10)"),
        (np.zeros(N - 1, dtype=np.int64), "predictions_wrong_shape", "int64 (19,)"),
        (np.zeros((N, 1), dtype=np.int64), "predictions_wrong_shape", "int64 (20, 1)"),
        (np.zeros(N, dtype=np.float64), "predictions_wrong_shape", "float64 (20,)"),
        (np.full(N, 15, dtype=np.int64), "predictions_out_of_range", "class ids from 15 to 15"),
        (np.full(N, -1, dtype=np.int64), "predictions_out_of_range", "class ids from -1 to -1"),
        (np.array(["a"] * N), "predictions_wrong_shape", "<U1 (20,)"),
    ],
)
def test_it_says_what_was_expected_and_what_came(
    out: Path, array: np.ndarray, code: str, got: str
) -> None:
    np.save(out / "predictions.npy", array)
    with pytest.raises(ScoringError) as caught:
        read_predictions(out, N)

    assert caught.value.code == code
    assert caught.value.params["got"] == got
    assert "20" in caught.value.params["expected"] or "0-14" in caught.value.params["expected"]


def test_a_missing_predictions_file_is_reported(out: Path) -> None:
    with raises("predictions_missing"):
        read_predictions(out, N)


# --------------------------------------------------------------------------- result.json

GOOD = {
    "ok": False,
    "error_class": "missing_module",
    "code": "module_not_found",
    "params": {"module": "keras"},
    "detail": "Traceback ...",
    "entry": "submit_katakana.ipynb",
    "contract": "verified",
    "n": 14500,
    "seconds": {"setup": 1.5, "predict": 0.0},
}


def write_result(out: Path, value: Any) -> None:
    (out / "result.json").write_text(value if isinstance(value, str) else json.dumps(value))


def test_a_valid_result_is_returned_without_unknown_keys(out: Path) -> None:
    write_result(out, {**GOOD, "extra": "dropped", "params": {**GOOD["params"], "Bad Key": 1}})
    result = read_result_json(out)

    assert result == GOOD
    error = result_error(result)
    assert error is not None and error.error_class is ErrorClass.MISSING_MODULE
    assert "keras" in error.render()


@pytest.mark.parametrize(
    "change",
    [
        {"ok": "yes"},
        {"ok": True},  # ok with an error class is inconsistent
        {"error_class": "root_shell"},
        {"code": "Not A Code!"},
        {"n": True},
        {"n": -1},
        {"contract": "other"},
        {"params": []},
        {"seconds": {"setup": -1}},
        {"detail": 5},
    ],
)
def test_a_result_with_wrong_types_is_rejected(out: Path, change: dict) -> None:
    write_result(out, {**GOOD, **change})
    with raises("result_invalid"):
        read_result_json(out)


def test_a_result_with_nan_or_not_json_is_rejected(out: Path) -> None:
    write_result(out, json.dumps(GOOD).replace('"n": 14500', '"n": NaN'))
    with raises("result_invalid"):
        read_result_json(out)
    write_result(out, "[1, 2")
    with raises("result_invalid"):
        read_result_json(out)


def test_an_oversized_or_linked_result_is_refused(out: Path, tmp_path: Path) -> None:
    write_result(out, {**GOOD, "detail": "x" * 70_000})
    with raises("output_too_large", ErrorClass.OUTPUT_TOO_LARGE):
        read_result_json(out)
    (out / "result.json").unlink()
    (tmp_path / "elsewhere.json").write_text(json.dumps(GOOD))
    (out / "result.json").symlink_to(tmp_path / "elsewhere.json")
    with raises("output_not_regular"):
        read_result_json(out)


def test_a_missing_result_reads_as_empty_and_reports_a_crash(out: Path) -> None:
    assert read_result_json(out) == {}
    error = result_error({})
    assert error is not None
    assert (error.error_class, error.code) == (ErrorClass.LEARNER_EXCEPTION, "result_missing")


def test_a_decoy_record_keeps_only_known_numbers(out: Path) -> None:
    (out / "decoy.json").write_text(
        json.dumps({"n": 500, "accuracy": 0.02, "loss": "x", "test_accuracy": 0.9, "evil": 1})
    )
    assert read_result_json(out, name="decoy.json") == {
        "n": 500,
        "accuracy": 0.02,
        "loss": None,
        "test_loss": None,
        "test_accuracy": 0.9,
        "error": None,
    }
    (out / "decoy.json").write_text("[]")
    assert read_result_json(out, name="decoy.json") == {}


def test_an_ok_result_has_no_error(out: Path) -> None:
    write_result(out, {**GOOD, "ok": True, "error_class": None, "code": "ok", "params": {}})
    assert result_error(read_result_json(out)) is None


def test_an_unknown_harness_code_still_renders(out: Path) -> None:
    write_result(out, {**GOOD, "error_class": "learner_exception", "code": "something_new"})
    error = result_error(read_result_json(out))
    assert error is not None and "something_new" in error.render()
