"""``python -m scorer check`` and ``score``: the same pipeline as the server, on a learner's data.

Runs with the process backend (what a learner's machine uses), so these tests need no
Docker; test_pipeline.py and tests/samples cover the isolating backends.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import demodata
from scorer.cli import main
from scorer.translation import fill, resolve_language, translator
from tests.learner_models import (
    LEGACY_TEMPLATE_CELL,
    build_legacy_template,
    build_verified_numpy,
    make_dataset,
    trained_params,
    write_notebook,
    zip_folder,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def params() -> dict[str, np.ndarray]:
    x, t = demodata.load("train")
    return trained_params(x, t, hidden=16, epochs=2)


@pytest.fixture
def verified_zip(tmp_path: Path, params: dict) -> Path:
    folder = build_verified_numpy(tmp_path / "submission", params, output="scores")
    return zip_folder(folder, tmp_path / "verified.zip")


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def write_data(folder: Path, prefix: str, per_class: int, seed: int = 3) -> Path:
    x, t = make_dataset(per_class, seed=seed)
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / f"{prefix}_data.npy", x)
    np.save(folder / f"{prefix}_label.npy", t)
    return folder


def test_check_scores_a_verified_zip_on_the_demo_training_data_and_prints_the_table(
    capsys: pytest.CaptureFixture[str], verified_zip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(verified_zip.parent)  # no 1_data folder anywhere near
    code, out, _ = run_cli(capsys, "check", str(verified_zip), "--lang", "en")
    assert code == 0
    assert "the demo training set (3000 images)" in out
    assert "submit_katakana.ipynb (verified contract)" in out
    assert "Verdict: scored" in out
    assert "Below the threshold (0.98)" in out
    # One table row per class, 200 training images each.
    rows = [line for line in out.splitlines() if line.strip()[:2].strip().isdigit()]
    assert len(rows) == 15 and all(" 200 " in row for row in rows)
    assert "ソ" in rows[14]
    assert "process backend runs your code on this computer without a sandbox" in out


def test_check_uses_the_course_data_folder_next_to_the_zipped_folder(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    params: dict,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kadai = tmp_path / "4_kadai"
    data = write_data(kadai / "1_data", "train", per_class=6)
    folder = build_verified_numpy(kadai / "2_notebook", params)
    # Learners often leave the zip inside the folder they zipped.
    zip_path = zip_folder(folder, tmp_path / "submit.zip").rename(folder / "submit.zip")
    monkeypatch.chdir(tmp_path)
    code, out, _ = run_cli(capsys, "check", str(zip_path), "--lang", "en", "--json")
    assert code == 0
    report = json.loads(out)
    assert report["data"] == {"source": str(data / "train_data.npy"), "n": 90}
    assert report["metrics"]["n"] == 90


def test_check_json_equals_score_zip_on_the_same_data(
    capsys: pytest.CaptureFixture[str], verified_zip: Path, tmp_path: Path, params: dict
) -> None:
    from sandbox.process_backend import ProcessBackend
    from scorer.pipeline import ScoreConfig, score_zip

    data = write_data(tmp_path / "set", "test", per_class=10)
    code, out, _ = run_cli(capsys, "check", str(verified_zip), "--data", str(data), "--json")
    assert code == 0
    report = json.loads(out)
    config = ScoreConfig(backend=ProcessBackend(), image="host", work_root=tmp_path / "runs")
    direct = score_zip(verified_zip, data, run_name="cli-compare", config=config)
    assert report["accuracy"] == direct.accuracy
    assert report["loss"] == direct.loss
    assert report["metrics"] == direct.metrics.to_dict()  # type: ignore[union-attr]


def test_a_legacy_zip_on_training_data_runs_with_the_size_check_relaxed_and_says_so(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    x, t = make_dataset(20, seed=1)
    folder = build_legacy_template(tmp_path / "submission", x, t, epochs=2)
    data = write_data(tmp_path / "1_data", "train", per_class=40)
    zip_path = zip_folder(folder, tmp_path / "legacy.zip")
    code, out, _ = run_cli(capsys, "check", str(zip_path), "--data", str(data), "--lang", "en")
    assert code == 0, out
    assert "(legacy contract)" in out
    # Scored from what the label stand-in recorded, as on the server: not self-reported.
    assert "self-reported" not in out
    assert "accuracy: 0." in out
    assert "size check expects 600 instead" in out


def test_a_legacy_makedataset_that_drops_images_reports_the_local_size(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    x, t = make_dataset(20, seed=1)
    dropping = LEGACY_TEMPLATE_CELL.replace(
        "    return test_data\n", "    return test_data[:-5]\n", 1
    )
    folder = build_legacy_template(tmp_path / "submission", x, t, epochs=1, cell=dropping)
    data = write_data(tmp_path / "1_data", "train", per_class=40)
    zip_path = zip_folder(folder, tmp_path / "legacy.zip")
    code, out, _ = run_cli(capsys, "check", str(zip_path), "--data", str(data), "--lang", "en")
    assert code == 1
    assert "Verdict: wrong_output" in out
    assert "makedataset() returned fewer images than the 600 of the test set." in out


def test_a_failing_notebook_exits_1_with_the_error_class_message_and_advice(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    folder = tmp_path / "submission"
    write_notebook(folder, "def predict(test_data):\n    return undefined_name\n")
    zip_path = zip_folder(folder, tmp_path / "broken.zip")
    code, out, _ = run_cli(capsys, "check", str(zip_path), "--lang", "en")
    assert code == 1
    assert "Verdict: learner_exception" in out
    assert "Your code raised an exception" in out
    assert "Your code raised NameError" in out
    assert "What to do: The message names the exception" in out
    assert "NameError: name 'undefined_name' is not defined" in out


def test_usage_problems_exit_2_with_a_message(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, verified_zip: Path
) -> None:
    code, _, err = run_cli(capsys, "check", str(tmp_path / "missing.zip"), "--lang", "en")
    assert code == 2 and "No such file" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run_cli(capsys, "check", str(verified_zip), "--data", str(empty), "--lang", "en")
    assert code == 2 and "holds neither test_data.npy" in err
    np.save(empty / "test_data.npy", np.zeros((3, 1, 28, 28)))
    np.save(empty / "test_label.npy", np.eye(15, dtype=np.int32)[:3])
    code, _, err = run_cli(capsys, "check", str(verified_zip), "--data", str(empty), "--lang", "en")
    assert code == 2 and "looks normalised" in err


def test_katakana_check_without_a_subcommand_means_check(
    capsys: pytest.CaptureFixture[str], verified_zip: Path
) -> None:
    code, out, _ = run_cli(capsys, str(verified_zip), "--lang", "en")
    assert code == 0 and "Verdict: scored" in out


def test_score_prints_json_for_instructors(
    capsys: pytest.CaptureFixture[str], verified_zip: Path, tmp_path: Path
) -> None:
    data = write_data(tmp_path / "testset", "test", per_class=5)
    code, out, _ = run_cli(
        capsys,
        "score",
        str(verified_zip),
        "--testset",
        str(data),
        "--backend",
        "process",
        "--json",
    )
    assert code == 0
    report = json.loads(out)
    assert report["status"] == "scored"
    assert report["contract"] == "verified"
    assert report["metrics"]["n"] == 75
    assert report["backend"] == "process"


def test_score_refuses_the_legacy_contract_when_asked(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    x, t = make_dataset(5, seed=1)
    folder = build_legacy_template(tmp_path / "submission", x, t, epochs=1)
    data = write_data(tmp_path / "testset", "test", per_class=5)
    code, out, _ = run_cli(
        capsys,
        "score",
        str(zip_folder(folder, tmp_path / "l.zip")),
        "--testset",
        str(data),
        "--backend",
        "process",
        "--no-legacy",
        "--json",
        "--lang",
        "en",
    )
    assert code == 1
    error = json.loads(out)["error"]
    assert error["code"] == "legacy_disabled"
    assert "does not accept" in error["message"]


def test_the_check_runs_with_only_numpy_and_ipython_importable(
    verified_zip: Path, tmp_path: Path
) -> None:
    blocker = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in {'django', 'docker', 'torch', 'celery', 'redis'}:\n"
        "            raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from scorer.__main__ import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", blocker, "check", str(verified_zip), "--lang", "en"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "Verdict: scored" in result.stdout


# --------------------------------------------------------------------------- translation


def write_mo(path: Path, catalog: dict[str, str]) -> None:
    """A GNU .mo file (what compilemessages writes), built by hand."""
    entries = sorted((k.encode(), v.encode()) for k, v in {"": "", **catalog}.items())
    entries[0] = (b"", b"Content-Type: text/plain; charset=UTF-8\n")
    ids = b"".join(k + b"\0" for k, _ in entries)
    strs = b"".join(v + b"\0" for _, v in entries)
    n = len(entries)
    start = 7 * 4 + 16 * n
    offsets, id_pos, str_pos = [], 0, 0
    for key, value in entries:
        offsets.append((len(key), start + id_pos, len(value), start + len(ids) + str_pos))
        id_pos += len(key) + 1
        str_pos += len(value) + 1
    header = struct.pack("<7I", 0x950412DE, 0, n, 28, 28 + 8 * n, 0, 0)
    table = b"".join(struct.pack("<2I", a, b) for a, b, _, _ in offsets)
    table += b"".join(struct.pack("<2I", c, d) for _, _, c, d in offsets)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + table + ids + strs)


def test_the_translator_reads_the_compiled_catalog_and_falls_back_to_english(
    tmp_path: Path,
) -> None:
    write_mo(
        tmp_path / "ja" / "LC_MESSAGES" / "django.mo",
        {"accuracy": "正解率", "Data: %(source)s (%(n)s images)": "データ: %(source)s（%(n)s 枚）"},
    )
    ja = translator("ja", locale_dir=tmp_path)
    assert ja("accuracy") == "正解率"
    assert (
        fill(ja, "Data: %(source)s (%(n)s images)", {"source": "x", "n": 3}) == "データ: x（3 枚）"
    )
    assert ja("loss") == "loss"
    assert translator("en", locale_dir=tmp_path)("accuracy") == "accuracy"
    assert translator("ja", locale_dir=tmp_path / "nowhere")("accuracy") == "accuracy"


def test_the_language_defaults_to_japanese_and_unknown_ones_become_english(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("KATAKANA_LANG", raising=False)
    assert resolve_language(None) == "ja"
    assert resolve_language("en_US") == "en"
    assert resolve_language("fr") == "en"
    monkeypatch.setenv("KATAKANA_LANG", "en")
    assert resolve_language(None) == "en"
