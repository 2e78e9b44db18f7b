"""The benchmark code itself: statistics, ratios, the CUDA variant, the report, one real
floor run, and the web benchmarks at a small scale on the test database."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench import sandbox, web
from bench.__main__ import sandbox_markdown
from sandbox.process_backend import ProcessBackend
from tests.learner_models import build_verified_numpy, make_dataset, trained_params, zip_folder


def test_summarise_gives_the_median_and_a_nearest_rank_p95() -> None:
    stats = sandbox.summarise([5.0, 1.0, 2.0, 4.0, 3.0])
    assert stats == {"n": 5, "median": 3.0, "p95": 5.0, "min": 1.0, "max": 5.0}
    twenty = sandbox.summarise([float(i) for i in range(1, 21)])
    assert twenty["p95"] == 19.0  # the 19th of 20, not the slowest
    assert sandbox.summarise([])["median"] is None


def test_ratios_divide_each_mode_median_by_the_floor_median() -> None:
    runs = [
        {"sample": "s", "mode": mode, "backend": mode, "status": "scored",
         "total": total, "sandbox": total - 0.5, "setup": 0.1, "predict": 0.2}
        for mode, total in [("process", 2.5), ("process", 2.5), ("docker", 3.0), ("docker", 3.5)]
    ]  # fmt: skip
    summary = sandbox.summarise_runs(runs)
    ratios = sandbox.ratios(summary)
    assert ratios["s"]["process"] == {"sandbox": 1.0, "total": 1.0}
    assert ratios["s"]["docker"] == {"sandbox": round(2.75 / 2.0, 3), "total": 1.3}
    assert summary["s"]["docker"]["backends"] == ["docker"]


def test_the_cuda_variant_moves_the_model_and_each_batch_to_the_gpu(tmp_path: Path) -> None:
    cell = (
        "model.eval()\n\n\ndef forward(x):\n"
        "    with torch.no_grad():\n        return model(x).numpy()\n"
    )
    notebook = {"cells": [{"cell_type": "code", "source": cell.splitlines(True)}]}
    original = tmp_path / "pytorch_cnn.zip"
    with zipfile.ZipFile(original, "w") as archive:
        archive.writestr("submit/submit_katakana.ipynb", json.dumps(notebook))
        archive.writestr("submit/katakana_cnn.pt", b"weights")
    variant = sandbox.gpu_variant(sandbox.Sample("pytorch_cnn", original, "test"), tmp_path)
    assert variant is not None and variant.name == "pytorch_cnn_cuda"
    with zipfile.ZipFile(variant.zip_path) as archive:
        notebook = json.loads(archive.read("submit/submit_katakana.ipynb"))
        source = "".join(notebook["cells"][0]["source"])
        assert archive.read("submit/katakana_cnn.pt") == b"weights"
    assert "model = model.cuda().eval()" in source
    assert "model(x.cuda()).cpu().numpy()" in source


def test_a_notebook_without_the_expected_lines_gets_no_cuda_variant(tmp_path: Path) -> None:
    original = tmp_path / "other.zip"
    with zipfile.ZipFile(original, "w") as archive:
        archive.writestr("submit/submit_katakana.ipynb", json.dumps({"cells": []}))
    assert sandbox.gpu_variant(sandbox.Sample("x", original, "test"), tmp_path) is None


def test_one_floor_run_scores_a_real_submission_and_reports_the_harness_split(
    tmp_path: Path,
) -> None:
    x, t = make_dataset(30, seed=0)
    folder = build_verified_numpy(tmp_path / "sub", trained_params(x, t, epochs=3))
    sample = sandbox.Sample("numpy_mlp", zip_folder(folder, tmp_path / "s.zip"), "test")
    testset = tmp_path / "testset"
    testset.mkdir()
    tx, tt = make_dataset(5, seed=1)
    np.save(testset / "test_data.npy", tx)
    np.save(testset / "test_label.npy", tt)
    row = sandbox.score_once(
        "process", ProcessBackend(), sample, testset, tmp_path, image="host", gpu=None, tag="t"
    )
    assert row["status"] == "scored" and row["backend"] == "process"
    assert row["total"] >= row["sandbox"] >= row["setup"] + row["predict"] > 0


def test_the_markdown_report_has_a_row_per_sample_and_mode() -> None:
    runs = [
        {"sample": s, "mode": m, "backend": m, "status": "scored",
         "total": 2.0, "sandbox": 1.5, "setup": 0.5, "predict": 0.5}
        for s in ("a", "b") for m in ("process", "docker")
    ]  # fmt: skip
    summary = sandbox.summarise_runs(runs)
    result: dict[str, Any] = {
        "machine": {"date": "2026-01-01T00:00:00", "cpu": "cpu", "cores": 2, "memory_gb": 8,
                    "kernel": "k", "docker": "d", "commit": "c", "loadavg_start": [0.5]},
        "image": "img", "gpu": None, "reps": 1, "summary": summary,
        "ratios": sandbox.ratios(summary), "skipped": {"bwrap": "not installed"},
    }  # fmt: skip
    table = sandbox_markdown(result)
    rows = [line for line in table.splitlines() if line.startswith(("| a |", "| b |"))]
    assert len(rows) == 4
    assert "Skipped bwrap: not installed" in table


@pytest.mark.django_db
def test_the_leaderboard_stays_three_queries_for_many_learners(settings_dirs: Any) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from server.submissions import selectors
    from tests.conftest import write_small_testset

    course = web.bench_course(write_small_testset(Path(settings_dirs.KATAKANA_RUNS_DIR) / "ts"))
    web.populate(course, 40, 5, log=lambda _: None)
    with CaptureQueriesContext(connection) as queries:
        rows = selectors.leaderboard(course)
    assert len(rows) == 40 and all(r.submissions == 5 for r in rows)
    # The learners with their best and latest ids, those submissions, everyone's counts.
    assert len(queries) == 3


@pytest.mark.django_db
def test_a_streamed_upload_is_stored_without_holding_it_in_memory(settings_dirs: Any) -> None:
    result = web.upload_bench(megabytes=20, repeat=1, log=lambda _: None)
    assert result["all_accepted"]
    assert result["rss_growth_mb"]["median"] < 20  # Django spools it to a temporary file
