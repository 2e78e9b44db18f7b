"""The local-check kit on the guide: downloadable, self-contained, the server's own code."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from django.urls import reverse

from scorer.pipeline import ScoreConfig, score_zip
from server.guide.checker import KIT_NAME, build_checker_kit
from tests.learner_models import build_verified_numpy, make_dataset, trained_params, zip_folder
from tests.samples.test_samples import server_backend
from tests.sandbox.conftest import IMAGE

REPO = Path(__file__).resolve().parents[3]
# Inside the check only the kit may provide these packages: anything it lacks must fail
# here, not be found in this repository through the editable install.
OWN_PACKAGES = {"scorer", "sandbox", "server", "demodata", "tests", "samples"}
RUN_KIT = """
import importlib.machinery, runpy, sys
KIT = sys.argv.pop(1)
OWN = set(sys.argv.pop(1).split(","))
FRAMEWORKS = {"django", "docker", "torch", "celery", "redis"}

class OnlyTheKit:
    def find_spec(self, name, path=None, target=None):
        top = name.split(".")[0]
        if top in FRAMEWORKS:
            raise ImportError("blocked: " + name)
        if top in OWN:
            spec = importlib.machinery.PathFinder.find_spec(name, path or [KIT])
            if spec is None:
                raise ImportError("not in the kit: " + name)
            return spec
        return None

sys.meta_path.insert(0, OnlyTheKit())
sys.argv = [KIT + "/katakana_check.py"] + sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_the_guide_links_the_kit_and_serves_it_as_a_zip(client, db) -> None:  # type: ignore[no-untyped-def]
    page = client.get(reverse("guide")).content.decode()
    assert reverse("guide_checker_kit") in page
    response = client.get(reverse("guide_checker_kit"))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert f'filename="{KIT_NAME}.zip"' in response["Content-Disposition"]
    names = zipfile.ZipFile(io.BytesIO(response.content)).namelist()
    assert f"{KIT_NAME}/scorer/cli.py" in names
    assert f"{KIT_NAME}/sandbox/runner/harness.py" in names
    assert f"{KIT_NAME}/locale/ja/LC_MESSAGES/django.mo" in names
    assert f"{KIT_NAME}/kit/submit_katakana.ipynb" in names
    # Only what the check needs: no server, no Docker backend, no secrets or data.
    assert not [n for n in names if "/server/" in n or "docker" in n or n.endswith(".npy")]


def test_the_kit_is_the_same_bytes_for_the_same_release() -> None:
    assert build_checker_kit(REPO) == build_checker_kit(REPO)


@pytest.mark.docker
def test_the_unpacked_kit_checks_a_zip_exactly_as_the_server_scores_it(tmp_path: Path) -> None:
    with zipfile.ZipFile(io.BytesIO(build_checker_kit(REPO))) as archive:
        archive.extractall(tmp_path)
    kit = tmp_path / KIT_NAME
    work = tmp_path / "4_kadai"
    x, t = make_dataset(8, seed=5)
    (work / "1_data").mkdir(parents=True)
    np.save(work / "1_data" / "train_data.npy", x)
    np.save(work / "1_data" / "train_label.npy", t)
    folder = build_verified_numpy(
        work / "submit_katakana", trained_params(x, t, hidden=16, epochs=2), output="scores"
    )
    zip_path = zip_folder(folder, work / "submit_katakana.zip")

    result = subprocess.run(
        [sys.executable, "-c", RUN_KIT, str(kit), ",".join(OWN_PACKAGES), str(zip_path),
         "--json", "--lang", "ja"],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=180,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    testset = tmp_path / "as-test"
    testset.mkdir()
    np.save(testset / "test_data.npy", x)
    np.save(testset / "test_label.npy", t)
    backend = server_backend()  # Docker as in production (bwrap where there is none)
    config = ScoreConfig(
        backend=backend,
        image=IMAGE,
        work_root=tmp_path / "runs",
        python=getattr(backend, "python", "python3"),
    )
    served = score_zip(zip_path, testset, run_name="kit-compare", config=config)
    assert served.status == "scored", served.error
    assert report["accuracy"] == served.accuracy
    assert report["loss"] == served.loss


def test_the_kit_speaks_japanese_from_its_own_catalog(tmp_path: Path) -> None:
    with zipfile.ZipFile(io.BytesIO(build_checker_kit(REPO))) as archive:
        archive.extractall(tmp_path)
    result = subprocess.run(
        [sys.executable, "-c", RUN_KIT, str(tmp_path / KIT_NAME), ",".join(OWN_PACKAGES),
         str(tmp_path / "missing.zip"), "--lang", "ja"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert "見つかりません" in result.stdout + result.stderr
