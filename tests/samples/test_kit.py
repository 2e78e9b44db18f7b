"""The learner kit's template notebook: verified contract, runs as shipped once the model
file it loads is there, and the samples differ from it only in the model-loading cell."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

import demodata
from samples.build import KIT_NOTEBOOK, MODEL_CELL_TAG, kit_notebook
from sandbox.process_backend import ProcessBackend
from scorer.entry import detect_entry
from scorer.pipeline import ScoreConfig, score_zip
from tests.learner_models import trained_params, verified_numpy_forward, zip_folder


def kit_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "submit_katakana"
    folder.mkdir()
    shutil.copy(KIT_NOTEBOOK, folder / "submit_katakana.ipynb")
    return folder


def test_the_kit_notebook_is_detected_as_the_verified_contract(tmp_path: Path) -> None:
    entry = detect_entry(kit_folder(tmp_path))
    assert (entry.contract, entry.path) == ("verified", "submit_katakana.ipynb")


def test_the_kit_notebook_runs_unchanged_with_the_model_file_it_names(tmp_path: Path) -> None:
    x, t = demodata.load("train")
    params = trained_params(x, t, hidden=16, epochs=2)
    folder = kit_folder(tmp_path)
    with open(folder / "katakana_model_params.pickle", "wb") as f:
        pickle.dump(params, f)
    testset = tmp_path / "testset"
    testset.mkdir()
    test_x, test_t = x[::20], t[::20]
    np.save(testset / "test_data.npy", test_x)
    np.save(testset / "test_label.npy", test_t)
    config = ScoreConfig(backend=ProcessBackend(), image="host", work_root=tmp_path / "runs")
    outcome = score_zip(
        zip_folder(folder, tmp_path / "kit.zip"), testset, run_name="kit", config=config
    )
    assert outcome.status == "scored", outcome.error
    expected = verified_numpy_forward(params, test_x).argmax(axis=1) == test_t.argmax(axis=1)
    assert outcome.accuracy == expected.mean()
    assert outcome.metrics is not None and outcome.metrics.score_kind == "logits"


def test_the_kit_says_in_japanese_what_predict_receives_and_returns() -> None:
    notebook = json.loads(KIT_NOTEBOOK.read_text(encoding="utf-8"))
    markdown = "".join(
        "".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "markdown"
    )
    for fact in (
        "(N, 1, 28, 28)",
        "float64",
        "0〜255",
        "(N,)",
        "(N, 15)",
        "一度だけ",
        "相対パス",
        "zip -r",
        "python -m scorer check",
    ):
        assert fact in markdown


def test_only_the_tagged_model_cell_is_meant_to_change() -> None:
    original = json.loads(KIT_NOTEBOOK.read_text(encoding="utf-8"))
    changed = kit_notebook("# another model\n")
    differing = [
        i
        for i, (a, b) in enumerate(zip(original["cells"], changed["cells"], strict=True))
        if a != b
    ]
    assert len(differing) == 1
    assert MODEL_CELL_TAG in original["cells"][differing[0]]["metadata"]["tags"]


def test_a_kit_without_exactly_one_model_cell_is_refused(tmp_path: Path) -> None:
    notebook = json.loads(KIT_NOTEBOOK.read_text(encoding="utf-8"))
    for cell in notebook["cells"]:
        cell["metadata"] = {}
    broken = tmp_path / "kit.ipynb"
    broken.write_text(json.dumps(notebook))
    with pytest.raises(ValueError, match=MODEL_CELL_TAG):
        kit_notebook("x = 1\n", kit=broken)
