"""The in-sandbox harness, run for real with the host python through ProcessBackend.

Every submission here is a real model (trained numpy net, pickles, notebooks); outputs
are read back with the same safe readers the server uses.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from sandbox.base import RunResult
from sandbox.process_backend import ProcessBackend
from scorer.errors import ErrorClass, ScoringError
from scorer.legacy import judge_decoy, parse_legacy_stdout, read_decoy
from scorer.predictions import (
    WRONG_OUTPUT_MESSAGES,
    read_predictions,
    read_result_json,
    result_error,
)
from scorer.taint import Provenance
from tests import learner_models as lm

BATCH = 500


@dataclass
class Run:
    result: RunResult
    out: Path
    submission: Path
    entry: str = "submit_katakana.ipynb"

    @property
    def provenance(self) -> Provenance:
        return Provenance(self.submission, self.entry)

    @property
    def stdout(self) -> str:
        return self.result.stdout.decode()

    @property
    def verdict(self) -> dict:
        return read_result_json(self.out)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("harness")


@pytest.fixture(scope="module")
def train_set() -> tuple[np.ndarray, np.ndarray]:
    return lm.make_dataset(40, seed=0)


@pytest.fixture(scope="module")
def test_set() -> tuple[np.ndarray, np.ndarray]:
    return lm.make_test_set()


@pytest.fixture(scope="module")
def data_dir(workspace: Path, test_set: tuple[np.ndarray, np.ndarray]) -> Path:
    return lm.write_data_dir(workspace / "1_data", *test_set)


@pytest.fixture(scope="module")
def small_data_dir(workspace: Path) -> Path:
    # Verified-contract error cases do not need the full 14,500 images.
    x, _ = lm.make_dataset(40, seed=3)
    return lm.write_data_dir(workspace / "small_data", x, None)


@pytest.fixture(scope="module")
def params(train_set: tuple[np.ndarray, np.ndarray]) -> dict:
    return lm.trained_params(*train_set)


def run(submission: Path, data_dir: Path, out: Path, **kwargs: object) -> Run:
    spec = lm.harness_spec(submission, data_dir, out, **kwargs)  # type: ignore[arg-type]
    entry = str(kwargs.get("entry", "submit_katakana.ipynb"))
    return Run(ProcessBackend().run(spec), out, submission, entry)


def batchwise(fn, x: np.ndarray) -> np.ndarray:  # type: ignore[no-untyped-def]
    return np.concatenate([fn(x[i : i + BATCH]) for i in range(0, len(x), BATCH)])


# --------------------------------------------------------------------------- verified


def test_verified_class_ids_equal_a_direct_numpy_computation(
    tmp_path: Path, data_dir: Path, params: dict, test_set: tuple[np.ndarray, np.ndarray]
) -> None:
    submission = lm.build_verified_numpy(tmp_path / "sub", params, output="ids")
    done = run(submission, data_dir, tmp_path / "out")

    assert done.result.exit_code == 0, done.result.stderr.decode()
    predictions = read_predictions(done.out, len(test_set[0]))
    expected = batchwise(lambda b: np.argmax(lm.verified_numpy_forward(params, b), 1), test_set[0])
    assert predictions.dtype == np.int64
    np.testing.assert_array_equal(predictions, expected)
    verdict = done.verdict
    assert (
        verdict["ok"] and verdict["n"] == 14500 and result_error(verdict, done.provenance) is None
    )


def test_verified_scores_equal_a_direct_numpy_computation_bit_for_bit(
    tmp_path: Path, data_dir: Path, params: dict, test_set: tuple[np.ndarray, np.ndarray]
) -> None:
    submission = lm.build_verified_numpy(tmp_path / "sub", params, output="scores")
    done = run(submission, data_dir, tmp_path / "out")

    predictions = read_predictions(done.out, len(test_set[0]))
    expected = batchwise(lambda b: lm.verified_numpy_forward(params, b), test_set[0])
    assert predictions.dtype == np.float64 and predictions.shape == (14500, 15)
    assert np.array_equal(predictions, expected)


def test_a_notebook_with_magics_and_shell_lines_runs(
    tmp_path: Path, small_data_dir: Path, params: dict
) -> None:
    submission = lm.build_with_magics(tmp_path / "sub", params)
    done = run(submission, small_data_dir, tmp_path / "out")

    assert done.verdict["ok"], done.verdict["detail"]
    assert "shell command not run: pip install" in done.result.stderr.decode()
    x = np.load(small_data_dir / "test_data.npy")
    expected = np.argmax(lm.verified_numpy_forward(params, x), axis=1)
    np.testing.assert_array_equal(read_predictions(done.out, len(x)), expected)


def test_a_class_pickled_from_main_loads_in_the_notebook(
    tmp_path: Path, small_data_dir: Path, params: dict
) -> None:
    submission = lm.build_main_pickled_class(tmp_path / "sub", params)
    done = run(submission, small_data_dir, tmp_path / "out")

    assert done.verdict["ok"], done.verdict["detail"]
    x = np.load(small_data_dir / "test_data.npy")
    expected = np.argmax(lm.verified_numpy_forward(params, x), axis=1)
    np.testing.assert_array_equal(read_predictions(done.out, len(x)), expected)


@pytest.mark.slow  # imports torch twice (here and in the harness process)
def test_a_torch_model_returning_a_tensor_is_accepted(
    tmp_path: Path, small_data_dir: Path, train_set: tuple[np.ndarray, np.ndarray]
) -> None:
    torch = pytest.importorskip("torch")
    submission = lm.build_torch(tmp_path / "sub", *train_set)
    done = run(submission, small_data_dir, tmp_path / "out")

    assert done.verdict["ok"], done.verdict["detail"]
    x = np.load(small_data_dir / "test_data.npy")
    model = lm.torch_net()
    model.load_state_dict(torch.load(submission / "model.pt", weights_only=True))
    with torch.no_grad():
        expected = model(torch.from_numpy(x).float()).numpy().astype(np.float64)
    predictions = read_predictions(done.out, len(x))
    np.testing.assert_allclose(predictions, expected, rtol=1e-5, atol=1e-5)


def test_a_py_entry_runs_as_main(tmp_path: Path, small_data_dir: Path) -> None:
    submission = tmp_path / "sub"
    submission.mkdir()
    (submission / "predict_katakana.py").write_text(
        "import numpy as np\n"
        "ready = False\n"
        "def predict(test_data):\n"
        "    assert ready\n"
        "    return np.full(len(test_data), 7)\n"
        "if __name__ == '__main__':\n"
        "    ready = True\n"
    )
    done = run(submission, small_data_dir, tmp_path / "out", entry="predict_katakana.py")

    assert done.verdict["ok"], done.verdict["detail"]
    assert (read_predictions(done.out, 600) == 7).all()


def test_sys_exit_zero_ends_the_notebook_but_predict_still_runs(
    tmp_path: Path, small_data_dir: Path
) -> None:
    submission = tmp_path / "sub"
    lm.write_notebook(
        submission,
        "import sys\nimport numpy as np\ndef predict(x):\n    return np.zeros(len(x), int)\n",
        "sys.exit(0)",
        "raise RuntimeError('never reached')",
    )
    done = run(submission, small_data_dir, tmp_path / "out")

    assert done.verdict["ok"], done.verdict["detail"]


# --------------------------------------------------------------------------- error classes


def failed(done: Run) -> ScoringError:
    assert done.result.exit_code == 1, done.result.stderr.decode()
    error = result_error(done.verdict, done.provenance)
    assert error is not None
    return error


def test_a_missing_library_is_missing_module(tmp_path: Path, small_data_dir: Path) -> None:
    submission = tmp_path / "sub"
    lm.write_notebook(submission, "import keras_that_is_not_installed\n")
    error = failed(run(submission, small_data_dir, tmp_path / "out"))

    assert error.error_class is ErrorClass.MISSING_MODULE
    assert error.params == {"module": "keras_that_is_not_installed"}
    assert "keras_that_is_not_installed" in error.render()


def test_a_pickle_needing_an_unzipped_package_is_missing_module(
    tmp_path: Path, data_dir: Path, train_set: tuple[np.ndarray, np.ndarray]
) -> None:
    submission = lm.build_legacy_template(tmp_path / "sub", *train_set, epochs=1)
    lm.stage_legacy_util(submission)
    for path in sorted((submission / "common").iterdir()):
        path.unlink()
    (submission / "common").rmdir()
    error = failed(run(submission, data_dir, tmp_path / "out", contract="legacy"))

    assert error.error_class is ErrorClass.MISSING_MODULE
    assert error.params["module"] == "common"


def test_an_exception_keeps_a_trimmed_traceback_with_short_paths(
    tmp_path: Path, small_data_dir: Path
) -> None:
    submission = tmp_path / "sub"
    (submission / "mylib").mkdir(parents=True)
    (submission / "mylib" / "__init__.py").write_text(
        "def deep(n):\n    if n == 0:\n        raise ValueError('weights do not fit')\n"
        "    return deep(n - 1)\n"
    )
    lm.write_notebook(submission, "import mylib\n\ndef predict(x):\n    return mylib.deep(60)\n")
    error = failed(run(submission, small_data_dir, tmp_path / "out"))

    assert error.error_class is ErrorClass.LEARNER_EXCEPTION
    assert error.params["exception"] == "ValueError"
    assert (error.params["file"], error.params["line"]) == ("mylib/__init__.py", "3")
    lines = error.detail.splitlines()
    assert len(lines) <= 40
    assert lines[-1] == "ValueError: weights do not fit"
    assert str(submission) not in error.detail and "/tmp/" not in error.detail
    assert 'File "mylib/__init__.py", line 3' in error.detail
    assert "harness.py" not in error.detail


def test_a_notebook_cell_error_names_the_cell(tmp_path: Path, small_data_dir: Path) -> None:
    submission = tmp_path / "sub"
    lm.write_notebook(submission, "x = 1\n", "y = 1 / 0\n")
    error = failed(run(submission, small_data_dir, tmp_path / "out"))

    assert (error.params["file"], error.params["cell"], error.params["line"]) == (
        "submit_katakana.ipynb",
        "2",
        "1",
    )
    assert "y = 1 / 0" in error.detail


def test_reading_stdin_fails_at_once_instead_of_hanging(
    tmp_path: Path, small_data_dir: Path
) -> None:
    submission = tmp_path / "sub"
    lm.write_notebook(submission, "name = input('model? ')\n")
    done = run(submission, small_data_dir, tmp_path / "out", wall_seconds=30)

    assert not done.result.timed_out
    assert failed(done).params["exception"] == "EOFError"


def test_an_impossible_allocation_is_memory_limit(tmp_path: Path, small_data_dir: Path) -> None:
    submission = tmp_path / "sub"
    lm.write_notebook(submission, "import numpy as np\nbig = np.ones(10**13)\n")
    error = failed(run(submission, small_data_dir, tmp_path / "out"))

    assert error.error_class is ErrorClass.MEMORY_LIMIT


def test_a_notebook_without_predict_is_no_entry_point(tmp_path: Path, small_data_dir: Path) -> None:
    submission = tmp_path / "sub"
    lm.write_notebook(submission, "def predic(x):\n    return x\n")
    error = failed(run(submission, small_data_dir, tmp_path / "out"))

    assert (error.error_class, error.code) == (ErrorClass.NO_ENTRY_POINT, "predict_missing")
    assert not (tmp_path / "out" / "predictions.npy").exists()


@pytest.mark.parametrize(
    ("body", "code", "described"),
    [
        ("np.zeros((len(x), 10))", "predict_wrong_shape", "shape (500, 10)"),
        ("np.zeros(len(x) - 1, int)", "predict_wrong_length", "499 rows for 500 images"),
        ("np.full((len(x), 15), np.nan)", "predict_not_finite", "NaN or infinite values"),
        ("np.full(len(x), 15)", "predict_out_of_range", "class ids from 15 to 15"),
        ("np.full(len(x), 2.5)", "predict_not_integer", "non-integer class ids"),
        ("['a'] * len(x)", "predict_wrong_type", "dtype <U1"),
        ("None", "predict_wrong_type", "dtype object"),
        ("(0.1, 0.9)", "predict_wrong_length", "2 rows for 500 images"),
    ],
)
def test_wrong_predict_output_gets_a_fixed_message_and_instructors_the_details(
    tmp_path: Path, small_data_dir: Path, body: str, code: str, described: str
) -> None:
    submission = tmp_path / "sub"
    lm.write_notebook(submission, f"import numpy as np\ndef predict(x):\n    return {body}\n")
    error = failed(run(submission, small_data_dir, tmp_path / "out"))

    assert (error.error_class, error.code) == (ErrorClass.WRONG_OUTPUT, code)
    # What came back (its shape, dtype, values) is the learner code's choice: described
    # to instructors in the detail, never in the learner's message.
    assert error.params == {}
    assert error.message == WRONG_OUTPUT_MESSAGES[code]
    assert described in error.detail
    assert not (tmp_path / "out" / "predictions.npy").exists()


def test_python_lists_of_ids_are_accepted(tmp_path: Path, small_data_dir: Path) -> None:
    submission = tmp_path / "sub"
    lm.write_notebook(submission, "def predict(x):\n    return [i % 15 for i in range(len(x))]\n")
    done = run(submission, small_data_dir, tmp_path / "out")

    expected = np.concatenate([np.arange(500) % 15, np.arange(100) % 15])  # per batch
    np.testing.assert_array_equal(read_predictions(done.out, 600), expected)


# --------------------------------------------------------------------------- legacy


@pytest.fixture(scope="module")
def legacy_template_run(
    workspace: Path, data_dir: Path, train_set: tuple[np.ndarray, np.ndarray]
) -> tuple[Path, Run]:
    submission = lm.build_legacy_template(workspace / "legacy_sub", *train_set)
    lm.stage_legacy_util(submission)
    return submission, run(submission, data_dir, workspace / "legacy_out", contract="legacy")


def test_the_legacy_template_prints_the_g3_score_to_the_last_digit(
    legacy_template_run: tuple[Path, Run], test_set: tuple[np.ndarray, np.ndarray]
) -> None:
    submission, done = legacy_template_run
    assert done.verdict["ok"], done.verdict["detail"]

    # Direct, unsandboxed: the template's preprocessing and the pickled model, G3 weighting.
    model = lm.load_legacy_model(submission)
    x, t = lm.preprocess(test_set[0]), test_set[1]
    losses, accuracies, sizes = [], [], []
    for start in range(0, len(x), BATCH):
        xb, tb = x[start : start + BATCH], t[start : start + BATCH]
        accuracies.append(model.accuracy(xb, tb))
        losses.append(model.loss(xb, tb))
        sizes.append(len(xb))
    loss = np.dot(losses, sizes) / np.sum(sizes)
    accuracy = np.dot(accuracies, sizes) / np.sum(sizes)

    lines = done.stdout.splitlines()
    assert lines[-2:] == [f"Test loss: {loss}", f"Test accuracy: {accuracy}"]
    assert lines[0] == "0" and lines[1] == f"{losses[0]} {accuracies[0]}"
    assert len(lines) == 2 * 29 + 2  # the decoy batch prints nothing
    assert parse_legacy_stdout(done.stdout) == (float(loss), float(accuracy))
    assert 0.2 < accuracy < 0.95  # a real, imperfect model: the check above means something


def test_the_decoy_trusts_the_honest_template(legacy_template_run: tuple[Path, Run]) -> None:
    _, done = legacy_template_run
    _, accuracy = parse_legacy_stdout(done.stdout)
    decoy = read_decoy(done.out)

    assert decoy is not None and decoy["n"] == 500 and decoy["error"] is None
    assert decoy["accuracy"] <= 1 - accuracy
    assert judge_decoy(accuracy, decoy)


def legacy_variant(tmp_path: Path, train_set: tuple, old: str, new: str) -> Path:
    assert old in lm.LEGACY_TEMPLATE_CELL
    cell = lm.LEGACY_TEMPLATE_CELL.replace(old, new)
    submission = lm.build_legacy_template(tmp_path / "sub", *train_set, epochs=1, cell=cell)
    lm.stage_legacy_util(submission)
    return submission


def test_the_decoy_flags_a_func_predict_that_always_reports_full_accuracy(
    tmp_path: Path, data_dir: Path, train_set: tuple
) -> None:
    submission = legacy_variant(
        tmp_path,
        train_set,
        "return loss, accuracy # 編集不可",
        "return 0.01, 1.0 # 編集不可",
    )
    done = run(submission, data_dir, tmp_path / "out", contract="legacy")

    assert parse_legacy_stdout(done.stdout) == (0.01, 1.0)
    assert not judge_decoy(1.0, read_decoy(done.out))


def test_the_decoy_flags_a_score_line_printed_after_util(
    tmp_path: Path, data_dir: Path, train_set: tuple
) -> None:
    submission = legacy_variant(
        tmp_path, train_set, "    main()\n", "    main()\n    print('Test accuracy: 0.99')\n"
    )
    done = run(submission, data_dir, tmp_path / "out", contract="legacy")

    _, accuracy = parse_legacy_stdout(done.stdout)
    assert accuracy == 0.99
    assert not judge_decoy(accuracy, read_decoy(done.out))


@pytest.mark.parametrize(
    ("new_return", "printed", "n"),
    [
        ("return test_data[:14000]", "14000 label_predのサイズが足りていません", 14000),
        (
            "return np.concatenate([test_data, test_data[:3]])",
            "14503 label_predのサイズが多すぎます",
            14503,
        ),
    ],
)
def test_a_wrong_dataset_size_prints_the_course_messages(
    tmp_path: Path, data_dir: Path, train_set: tuple, new_return: str, printed: str, n: int
) -> None:
    submission = legacy_variant(
        tmp_path, train_set, "    return test_data\n", f"    {new_return}\n"
    )
    done = run(submission, data_dir, tmp_path / "out", contract="legacy")

    message = printed.split(" ", 1)[1]
    assert done.stdout.splitlines() == [
        printed,
        f"Test loss: {message}",
        f"Test accuracy: {message}",
    ]
    with pytest.raises(ScoringError) as caught:
        parse_legacy_stdout(done.stdout)
    assert caught.value.code == "legacy_size_mismatch"
    # The count the run printed is learner-chosen: the learner is told fewer or more.
    assert str(n) not in caught.value.render() and str(n) in caught.value.detail
    assert ("fewer" if n < 14500 else "more") in caught.value.render()
    assert read_decoy(done.out) is None


def test_the_learners_own_global_random_state_is_left_alone(
    tmp_path: Path, data_dir: Path, train_set: tuple
) -> None:
    # A learner who seeds np.random must see the same stream as on their machine.
    submission = legacy_variant(
        tmp_path,
        train_set,
        "    main()\n",
        "    np.random.seed(5)\n    main()\n    print('draw', np.random.rand())\n",
    )
    done = run(submission, data_dir, tmp_path / "out", contract="legacy")

    expected = np.random.RandomState(5).rand()
    assert f"draw {expected}" in done.stdout
    assert json.loads((tmp_path / "out" / "decoy.json").read_text())["accuracy"] is not None


# --------------------------------------------------------------------------- notebook formats

NBFORMAT3 = {
    "nbformat": 3,
    "nbformat_minor": 0,
    "metadata": {},
    "worksheets": [
        {
            "cells": [
                {"cell_type": "markdown", "source": ["# v3"]},
                {"cell_type": "code", "input": ["import numpy as np\n"], "outputs": []},
                {
                    "cell_type": "code",
                    "input": "def predict(x):\n    return np.full(len(x), 4)\n",
                    "outputs": [],
                },
            ]
        }
    ],
}


def test_an_nbformat3_notebook_runs_its_cells_as_the_scorer_reads_them(
    tmp_path: Path, small_data_dir: Path
) -> None:
    import json

    from sandbox.runner import harness
    from scorer.entry import notebook_code_cells

    submission = tmp_path / "sub"
    submission.mkdir()
    notebook = submission / "submit_katakana.ipynb"
    notebook.write_text(json.dumps(NBFORMAT3))
    # The scorer found predict in these cells; the harness must run the same ones.
    ran = [cell.strip() for cell in harness.notebook_code_cells(notebook)]
    assert ran == [cell.strip() for cell in notebook_code_cells(NBFORMAT3)]
    done = run(submission, small_data_dir, tmp_path / "out")

    assert done.verdict["ok"], done.verdict["detail"]
    assert (read_predictions(done.out, 600) == 4).all()


# --------------------------------------------------------------------------- CUDA on a CPU worker


def test_a_numpy_run_never_imports_torch_or_tensorflow(
    tmp_path: Path, small_data_dir: Path
) -> None:
    # The hook that maps CUDA-saved tensors to the CPU waits for the learner's own import.
    folder = tmp_path / "sub"
    lm.write_notebook(
        folder,
        "import sys\nimport numpy as np\n"
        "assert not {'torch', 'tensorflow', 'keras'} & set(sys.modules), sorted(sys.modules)\n"
        "def predict(x):\n    return np.zeros(len(x), dtype=np.int64)\n",
    )
    done = run(folder, small_data_dir, tmp_path / "out")
    assert done.verdict["ok"], done.verdict


def test_code_that_insists_on_cuda_gets_its_own_verdict(
    tmp_path: Path, small_data_dir: Path
) -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this host has a GPU")
    folder = tmp_path / "sub"
    lm.write_notebook(folder, "import torch\nx = torch.zeros(1).cuda()\n")
    done = run(folder, small_data_dir, tmp_path / "out")
    error = result_error(done.verdict, done.provenance)
    assert error is not None and error.code == "cuda_unavailable"
    assert error.error_class is ErrorClass.LEARNER_EXCEPTION
