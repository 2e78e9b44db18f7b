"""Train vs test in the same run: the public training set through the same model, scored
on the host, for both contracts; it never changes or breaks the test-set verdict."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest

from sandbox.base import Limits
from sandbox.process_backend import ProcessBackend
from scorer.pipeline import ScoreConfig, ScoreOutcome, score_zip
from scorer.testset import store_testset, store_training_set
from tests import learner_models as lm
from tests.scorer.test_pipeline import IMAGE, make_backend

LIMITS = Limits(wall_seconds=120, memory_mb=2048)


@pytest.fixture(scope="module")
def data() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {"train": lm.make_dataset(40, seed=0), "test": lm.make_test_set()}


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory, data) -> Path:  # type: ignore[no-untyped-def]
    raw = tmp_path_factory.mktemp("raw")
    for name, (x, t) in data.items():
        np.save(raw / f"{name}_data.npy", x)
        np.save(raw / f"{name}_label.npy", t)
    dest = tmp_path_factory.mktemp("store")
    store_testset(raw / "test_data.npy", raw / "test_label.npy", dest)
    assert store_training_set(raw / "train_data.npy", raw / "train_label.npy", dest) == 600
    dest.chmod(0o755)
    for path in dest.iterdir():
        path.chmod(0o644)
    return dest


def score(zip_path: Path, testset: Path, tmp: Path, backend=None) -> ScoreOutcome:  # type: ignore[no-untyped-def]
    backend = backend or ProcessBackend()
    config = ScoreConfig(
        backend=backend,
        image=IMAGE,
        work_root=tmp / "runs",
        limits=LIMITS,
        python=getattr(backend, "python", "python3"),
    )
    return score_zip(
        zip_path, testset, run_name=f"katakana-train-{uuid.uuid4().hex[:8]}", config=config
    )


def direct_accuracy(params: dict, x: np.ndarray, t: np.ndarray) -> float:
    return float(np.mean(lm.verified_numpy_forward(params, x).argmax(1) == t.argmax(1)))


@pytest.mark.parametrize("backend_name", ["process", "docker"])
def test_a_verified_run_reports_training_accuracy_beside_test_accuracy(
    stored: Path,
    data,
    tmp_path: Path,
    backend_name: str,  # type: ignore[no-untyped-def]
) -> None:
    backend = make_backend("docker") if backend_name == "docker" else None
    params = lm.trained_params(*data["train"])
    folder = lm.build_verified_numpy(tmp_path / "sub", params)
    outcome = score(lm.zip_folder(folder, tmp_path / "v.zip"), stored, tmp_path, backend)
    assert outcome.status == "scored", outcome.error
    assert outcome.accuracy == direct_accuracy(params, *data["test"])
    assert outcome.train_accuracy == direct_accuracy(params, *data["train"])
    # Copy detection's evidence: the answers per test image and the model file's hash.
    assert outcome.predicted_classes is not None
    np.testing.assert_array_equal(
        outcome.predicted_classes, lm.verified_numpy_forward(params, data["test"][0]).argmax(1)
    )
    assert list(outcome.model_files) == ["params.pickle"]
    assert outcome.durations["harness_train"] >= 0
    # The gallery's groups: the most frequent confusions first, every image really wrong.
    x, t = data["train"]
    predicted = lm.verified_numpy_forward(params, x).argmax(1)
    true = t.argmax(1)
    counts = [g["count"] for g in outcome.train_mistakes]
    assert counts == sorted(counts, reverse=True) and sum(counts) <= int((predicted != true).sum())
    for group in outcome.train_mistakes:
        for image in group["images"]:
            assert (true[image["index"]], predicted[image["index"]]) == (
                group["true"],
                group["predicted"],
            )


def test_a_legacy_run_records_the_training_set_without_any_label(
    stored: Path,
    data,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    folder = lm.build_legacy_template(tmp_path / "sub", *data["train"], epochs=3)
    outcome = score(lm.zip_folder(folder, tmp_path / "l.zip"), stored, tmp_path)
    assert outcome.status == "scored", outcome.error
    model = lm.load_legacy_model(folder)
    x, t = data["train"]
    expected = model.accuracy((x / x.max()).astype("float32").reshape(-1, 784), t)
    assert outcome.train_accuracy == pytest.approx(expected, abs=1e-12)
    assert outcome.self_reported is False


def test_a_predict_that_fails_on_the_training_set_keeps_its_test_score(
    stored: Path, tmp_path: Path
) -> None:
    cell = (
        "import numpy as np\n\n"
        "calls = []\n\n"
        "def predict(x):\n"
        "    calls.append(len(x))\n"
        "    if sum(calls) > 14500:\n"
        "        raise RuntimeError('only the test set')\n"
        "    return np.zeros(len(x), dtype=np.int64)\n"
    )
    folder = tmp_path / "sub"
    lm.write_notebook(folder, cell)
    outcome = score(lm.zip_folder(folder, tmp_path / "f.zip"), stored, tmp_path)
    assert outcome.status == "scored", outcome.error
    assert outcome.accuracy == 1300 / 14500 and outcome.train_accuracy is None
    assert any(note.startswith("training set:") for note in outcome.notes)


def test_a_notebook_that_checks_itself_on_the_training_files_still_runs(
    stored: Path, tmp_path: Path
) -> None:
    # The kit's self-check cell: when ../1_data/train_data.npy exists, it loads the
    # training labels beside it too. Both are public and mounted together.
    cell = (
        "import os\nimport numpy as np\n\n"
        "def predict(x):\n    return np.zeros(len(x), dtype=np.int64)\n\n"
        "if os.path.exists('../1_data/train_data.npy'):\n"
        "    t = np.load('../1_data/train_label.npy')\n"
        "    assert t.shape == (600, 15)\n"
    )
    folder = tmp_path / "sub"
    lm.write_notebook(folder, cell)
    outcome = score(lm.zip_folder(folder, tmp_path / "k.zip"), stored, tmp_path)
    assert outcome.status == "scored", outcome.error
    assert outcome.train_accuracy == pytest.approx(1 / 15)
