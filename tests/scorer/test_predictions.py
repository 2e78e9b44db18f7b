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
from scorer.taint import Provenance

N = 20


@pytest.fixture
def provenance(tmp_path: Path) -> Provenance:
    """A zip whose notebook imports keras (so the module name may be shown)."""
    root = tmp_path / "submission"
    root.mkdir()
    (root / "submit_katakana.ipynb").write_text('{"cells": [{"source": "import keras"}]}')
    (root / "model.py").write_text("def f():\n    raise ValueError\n")
    return Provenance(root, "submit_katakana.ipynb")


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
    with raises("output_unreadable"):
        read_predictions(out, N)


def test_it_refuses_a_plain_pickle(out: Path) -> None:
    (out / "predictions.npy").write_bytes(pickle.dumps(list(range(N))))
    with raises("output_unreadable"):
        read_predictions(out, N)


def test_it_refuses_an_npz_archive(out: Path) -> None:
    with open(out / "predictions.npy", "wb") as f:
        np.savez(f, a=np.zeros(N, dtype=np.int64))
    with raises("output_unreadable"):
        read_predictions(out, N)


def test_it_refuses_a_truncated_file(out: Path) -> None:
    np.save(out / "predictions.npy", np.zeros(N, dtype=np.int64))
    data = (out / "predictions.npy").read_bytes()
    (out / "predictions.npy").write_bytes(data[:-8])
    with raises("output_unreadable"):
        read_predictions(out, N)


@pytest.mark.parametrize(
    ("array", "code"),
    [
        (np.full((N, 15), np.nan), "predictions_not_finite"),
        (np.full((N, 15), np.inf), "predictions_not_finite"),
        (np.zeros((N, 10)), "output_unreadable"),
        (np.zeros(N - 1, dtype=np.int64), "output_unreadable"),
        (np.zeros((N, 1), dtype=np.int64), "output_unreadable"),
        (np.zeros(N, dtype=np.float64), "output_unreadable"),
        (np.full(N, 15, dtype=np.int64), "predictions_out_of_range"),
        (np.full(N, -1, dtype=np.int64), "predictions_out_of_range"),
        (np.array(["a"] * N), "output_unreadable"),
        (np.zeros((0, 123456789), dtype=np.int64), "output_unreadable"),
        (np.zeros(N, dtype=[("label_3_14_7", "i8")]), "output_unreadable"),
    ],
)
def test_a_bad_predictions_file_gets_a_fixed_message_without_its_content(
    out: Path, array: np.ndarray, code: str
) -> None:
    np.save(out / "predictions.npy", array)
    with pytest.raises(ScoringError) as caught:
        read_predictions(out, N)

    assert caught.value.code == code
    text = caught.value.render()
    # Nothing the file chose (its shape, dtype, field names, values) is in the message.
    for chosen in ("123456789", "label_3_14_7", "<U1", "(20, 10)", "19", "15 to 15"):
        assert chosen not in text


@pytest.mark.parametrize(
    "header",
    [
        "{'descr': '<i8', 'fortran_order': False, 'shape': (10**12,), }",
        "{'descr': '<i8', 'fortran_order': False, 'shape': " + "(" * 3000 + ")" * 3000 + "}",
        "{'descr': [('a', '|O')], 'fortran_order': False, 'shape': (20,), }",
        "{'descr': '<i8', 'fortran_order': False, 'shape': (20,), }" + " " * 100_000,
    ],
)
def test_a_malicious_npy_header_is_the_learners_error_not_a_crash(out: Path, header: str) -> None:
    body = header.encode("latin1") + b"\n"
    length = len(body)
    prefix = (
        b"\x93NUMPY\x01\x00" + length.to_bytes(2, "little")
        if length < 65536
        else (b"\x93NUMPY\x02\x00" + length.to_bytes(4, "little"))
    )
    (out / "predictions.npy").write_bytes(prefix + body + b"\0" * 160)
    with raises("output_unreadable"):
        read_predictions(out, N)


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


def test_a_valid_result_is_returned_without_unknown_keys(out: Path, provenance: Provenance) -> None:
    write_result(out, {**GOOD, "extra": "dropped", "params": {**GOOD["params"], "Bad Key": 1}})
    result = read_result_json(out)

    assert result == GOOD
    error = result_error(result, provenance)
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


def test_a_missing_result_reads_as_empty_and_reports_a_crash(
    out: Path, provenance: Provenance
) -> None:
    assert read_result_json(out) == {}
    error = result_error({}, provenance)
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


def test_an_ok_result_has_no_error(out: Path, provenance: Provenance) -> None:
    write_result(out, {**GOOD, "ok": True, "error_class": None, "code": "ok", "params": {}})
    assert result_error(read_result_json(out), provenance) is None


def test_a_code_the_harness_never_writes_is_an_invalid_result(
    out: Path, provenance: Provenance
) -> None:
    # A code is learner-writable text (64 characters): only the harness's own pass.
    write_result(out, {**GOOD, "error_class": "learner_exception", "code": "label_3_14_7_0"})
    with raises("result_invalid"):
        result_error(read_result_json(out), provenance)


def test_the_error_class_is_the_hosts_not_the_one_written(
    out: Path, provenance: Provenance
) -> None:
    write_result(out, {**GOOD, "error_class": "infrastructure", "code": "predict_wrong_shape"})
    error = result_error(read_result_json(out), provenance)
    assert error is not None and error.error_class is ErrorClass.WRONG_OUTPUT


@pytest.mark.parametrize(
    ("code", "params", "shown", "hidden"),
    [
        # A learner-defined exception class shows as its nearest builtin base.
        (
            "exception",
            {
                "exception_mro": "__main__.Labels_3_14_7 builtins.ValueError builtins.Exception",
                "location": "model.py, line 2",
            },
            ["ValueError", "model.py, line 2"],
            ["Labels_3_14_7"],
        ),
        # A traceback "file" made up with compile() is not one of the zip's files.
        (
            "exception",
            {"exception_mro": "builtins.KeyError", "location": "<3 14 7 0 2>, line 1"},
            ["KeyError"],
            ["3 14 7 0 2"],
        ),
        (
            "exception",
            {"exception_mro": "builtins.KeyError", "location": "../../etc/passwd, line 1"},
            ["KeyError"],
            ["passwd"],
        ),
        (
            "exception",
            {
                "exception_mro": "_pickle.UnpicklingError builtins.Exception",
                "location": "submit_katakana.ipynb[code cell 2], line 7",
            },
            ["UnpicklingError", "submit_katakana.ipynb, code cell 2, line 7"],
            [],
        ),
        # A module name computed at run time is not written in the zip.
        (
            "exception",
            {"exception_mro": "builtins.OSError", "location": "d/" * 3000 + "x.py, line 1"},
            ["OSError"],
            ["d/d/"],
        ),
        (
            "exception",
            {"exception_mro": "builtins.OSError", "location": "d" * 250 + ".py, line 1"},
            ["OSError"],
            ["ddd"],
        ),
        ("module_not_found", {"module": "x_3_14_7_0"}, [], ["x_3_14_7_0"]),
        ("module_not_found", {"module": "keras"}, ["keras"], []),
        ("system_exit", {"exit_code": 3}, ["sys.exit(3)"], []),
        ("system_exit", {"exit_code": "labels 3 14 7"}, ["sys.exit()"], ["labels"]),
        ("system_exit", {"exit_code": 123456789}, ["sys.exit()"], ["123456789"]),
        ("predict_wrong_length", {"got": "3 14 7 rows", "expected": "x"}, [], ["3 14 7"]),
    ],
)
def test_a_learner_sees_only_the_narrow_fixed_forms(
    out: Path,
    provenance: Provenance,
    code: str,
    params: dict[str, Any],
    shown: list[str],
    hidden: list[str],
) -> None:
    write_result(out, {**GOOD, "error_class": "learner_exception", "code": code, "params": params})
    error = result_error(read_result_json(out), provenance)
    assert error is not None
    text = error.render()
    for expected in shown:
        assert expected in text
    for secret in hidden:
        assert secret not in text and secret not in str(error.params)


@pytest.mark.parametrize(
    "text",
    ["[" * 5000 + "]" * 5000, '{"a":' * 3000 + "1" + "}" * 3000, '{"ok": [[[[[[1]]]]]]}'],
)
def test_deeply_nested_json_is_an_invalid_result_not_a_crash(out: Path, text: str) -> None:
    write_result(out, text)
    with raises("result_invalid"):
        read_result_json(out)
    (out / "decoy.json").write_text(text)
    assert read_result_json(out, name="decoy.json") == {}


def test_an_exceptions_location_is_worded_in_the_learners_language(
    out: Path, provenance: Provenance
) -> None:
    from scorer.translation import translator

    params = {
        "exception_mro": "builtins.KeyError",
        "location": f"{provenance.entry}[code cell 1], line 2",
    }
    write_result(
        out, {**GOOD, "error_class": "learner_exception", "code": "exception", "params": params}
    )
    error = result_error(read_result_json(out), provenance)
    assert error is not None
    japanese = error.render(translator("ja"))
    assert "コードセル 1" in japanese and "2 行目" in japanese
    assert "code cell" not in japanese and "line" not in japanese
    assert error.render(translator("en")).endswith(f"({provenance.entry}, code cell 1, line 2).")
