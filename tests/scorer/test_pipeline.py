"""score_zip end to end through the real sandboxes (Docker and bubblewrap).

One real zip per error class, the legacy contract's self-reported score against a direct
computation on the 14,500-image demo test set, the decoy catching a cheat, verified
metrics against a numpy reference, the label file's absence from a verified container,
and a few hostile notebooks. Backends that are not available here are skipped with the
reason, except Docker when KATAKANA_REQUIRE_DOCKER=1 (then the test fails).
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import demodata
from sandbox.base import RUN_LABEL, Limits, SandboxBackend
from scorer.errors import ErrorClass
from scorer.pipeline import ScoreConfig, ScoreOutcome, score_zip
from tests.learner_models import (
    LEGACY_TEMPLATE_CELL,
    build_legacy_template,
    build_verified_numpy,
    load_legacy_model,
    trained_params,
    verified_numpy_forward,
    write_notebook,
    zip_folder,
)
from tests.sandbox.conftest import (
    IMAGE,
    processes_with,
)
from tests.sandbox.conftest import (
    make_backend as sandbox_backend,
)

pytestmark = pytest.mark.docker
SMALL_PER_CLASS = 4
FAST = Limits(wall_seconds=60, memory_mb=1024, pids=128, cpus=1.0)


def make_backend(name: str, **options: Any) -> SandboxBackend:
    return sandbox_backend(name, **options)


@pytest.fixture(params=["docker", "bwrap"])
def backend(request: pytest.FixtureRequest) -> SandboxBackend:
    return make_backend(request.param)


@pytest.fixture(scope="module")
def demo_testset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 14,500-image demo test set in the stored (canonical) form."""
    folder = tmp_path_factory.mktemp("demo-testset")
    data, labels = demodata.load("test")
    np.save(folder / "test_data.npy", data)
    np.save(folder / "test_label.npy", labels)
    return _readable(folder)


@pytest.fixture(scope="module")
def small_testset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four demo test images per class: enough for every error path, fast to run."""
    folder = tmp_path_factory.mktemp("small-testset")
    data, labels = demodata.load("test")
    rows = np.concatenate([np.flatnonzero(labels[:, c] == 1)[:SMALL_PER_CLASS] for c in range(15)])
    np.save(folder / "test_data.npy", data[rows])
    np.save(folder / "test_label.npy", labels[rows])
    return _readable(folder)


@pytest.fixture(scope="module")
def params() -> dict[str, np.ndarray]:
    x, t = demodata.load("train")
    return trained_params(x, t, hidden=16, epochs=3)


def _readable(folder: Path) -> Path:
    folder.chmod(0o755)
    for path in folder.iterdir():
        path.chmod(0o644)
    return folder


def score(
    zip_path: Path,
    testset: Path,
    backend: SandboxBackend,
    work: Path,
    *,
    limits: Limits = FAST,
    run_name: str = "",
    labelled_allowed: bool = False,
) -> ScoreOutcome:
    config = ScoreConfig(
        backend=backend,
        image=IMAGE,
        work_root=work / "runs",
        limits=limits,
        python=getattr(backend, "python", "python3"),
        legacy_labelled_allowed=labelled_allowed,
    )
    # A name of its own per call: parallel test sessions on one engine never collide.
    run_name = run_name or f"katakana-pipeline-test-{uuid.uuid4().hex[:8]}"
    return score_zip(zip_path, testset, run_name=run_name, config=config)


def notebook_zip(tmp: Path, *cells: str, files: dict[str, str] | None = None) -> Path:
    folder = tmp / "submission"
    write_notebook(folder, *cells)
    for name, text in (files or {}).items():
        (folder / name).write_text(text)
    return zip_folder(folder, tmp / "submission.zip")


def failed_with(outcome: ScoreOutcome, error_class: ErrorClass) -> str:
    assert outcome.status == "failed", outcome
    assert outcome.error is not None
    assert outcome.error.error_class is error_class, outcome.error
    return outcome.error.render()


# --------------------------------------------------------------------------- one zip per class


def test_a_zip_slip_entry_is_an_invalid_archive_naming_the_entry(
    backend: SandboxBackend, small_testset: Path, tmp_path: Path
) -> None:
    import zipfile

    path = tmp_path / "slip.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("submit/submit_katakana.ipynb", "{}")
        archive.writestr("submit/../../evil.py", "print('escaped')")
    message = failed_with(score(path, small_testset, backend, tmp_path), ErrorClass.INVALID_ARCHIVE)
    assert "evil.py" in message
    assert not (tmp_path / "evil.py").exists()


def test_a_zip_without_an_entry_point_lists_what_it_found(
    backend: SandboxBackend, small_testset: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "submission"
    folder.mkdir()
    (folder / "train.py").write_text("def train():\n    pass\n")
    path = zip_folder(folder, tmp_path / "submission.zip")
    message = failed_with(score(path, small_testset, backend, tmp_path), ErrorClass.NO_ENTRY_POINT)
    assert "train.py [train]" in message


def test_a_module_left_out_of_the_zip_is_named(
    backend: SandboxBackend, small_testset: Path, tmp_path: Path
) -> None:
    path = notebook_zip(
        tmp_path, "from katakana_helpers import normalise\n\ndef predict(test_data):\n    pass\n"
    )
    outcome = score(path, small_testset, backend, tmp_path)
    assert "'katakana_helpers'" in failed_with(outcome, ErrorClass.MISSING_MODULE)


def test_an_exception_shows_a_trimmed_traceback_without_host_paths(
    backend: SandboxBackend, small_testset: Path, tmp_path: Path
) -> None:
    helper = "def scale(x):\n    raise ValueError('no scale for shape %s' % (x.shape,))\n"
    path = notebook_zip(
        tmp_path,
        "from helper import scale\n\ndef predict(test_data):\n    return scale(test_data)\n",
        files={"helper.py": helper},
    )
    outcome = score(path, small_testset, backend, tmp_path)
    message = failed_with(outcome, ErrorClass.LEARNER_EXCEPTION)
    assert "ValueError" in message
    assert outcome.error is not None
    detail = outcome.error.detail
    assert 'helper.py", line 2' in detail
    assert "ValueError: no scale for shape (60, 1, 28, 28)" in detail
    assert len(detail.splitlines()) <= 40
    for leak in (str(tmp_path), "/work/submission", "harness.py", "/harness/"):
        assert leak not in detail
        assert leak not in outcome.log_excerpt


def test_output_of_the_wrong_shape_says_what_is_expected_in_fixed_words(
    backend: SandboxBackend, small_testset: Path, tmp_path: Path
) -> None:
    path = notebook_zip(
        tmp_path,
        "import numpy as np\n\n"
        "def predict(test_data):\n    return np.zeros((len(test_data), 10))\n",
    )
    message = failed_with(score(path, small_testset, backend, tmp_path), ErrorClass.WRONG_OUTPUT)
    assert "(N, 15) scores" in message
    assert "(60, 10)" not in message  # what came back is the learner code's choice


def test_a_notebook_that_never_finishes_hits_the_time_limit(
    backend: SandboxBackend, small_testset: Path, tmp_path: Path
) -> None:
    path = notebook_zip(tmp_path, "import time\ntime.sleep(3600)\n\ndef predict(x):\n    pass\n")
    started = time.monotonic()
    limits = Limits(wall_seconds=4, memory_mb=1024, pids=64, cpus=1.0)
    outcome = score(path, small_testset, backend, tmp_path, limits=limits)
    assert "within 4 seconds" in failed_with(outcome, ErrorClass.TIME_LIMIT)
    assert time.monotonic() - started < 30


def test_a_notebook_that_hoards_memory_hits_the_memory_limit(
    backend: SandboxBackend, small_testset: Path, tmp_path: Path
) -> None:
    path = notebook_zip(
        tmp_path,
        "import numpy as np\nhoard = np.ones((768, 1024, 1024), dtype=np.uint8)\n\n"
        "def predict(x):\n    pass\n",
    )
    limits = Limits(wall_seconds=60, memory_mb=256, pids=64, cpus=1.0)
    outcome = score(path, small_testset, backend, tmp_path, limits=limits)
    message = failed_with(outcome, ErrorClass.MEMORY_LIMIT)
    # An OOM kill names the limit; an allocation refused in-process names MemoryError.
    assert "256 MB" in message or "MemoryError" in message


def test_filling_the_output_folder_is_output_too_large(
    backend: SandboxBackend, small_testset: Path, tmp_path: Path
) -> None:
    cell = (
        "import pathlib\n"
        "for i in range(5000):\n"
        "    pathlib.Path('/out', f'junk{i}').write_bytes(b'')\n\n"
        "def predict(test_data):\n    return [0] * len(test_data)\n"
    )
    message = failed_with(
        score(notebook_zip(tmp_path, cell), small_testset, backend, tmp_path),
        ErrorClass.OUTPUT_TOO_LARGE,
    )
    assert "files to the output folder" in message


def test_printing_past_the_capture_cap_keeps_the_legacy_score_lines(
    backend: SandboxBackend, demo_testset: Path, tmp_path: Path
) -> None:
    # The capture keeps a stream's head and tail: the Test lines at the end survive.
    # This func_predict never compares the labels: where the course allows it, the
    # rerun with the labels reports its own (self-reported) numbers.
    cell = (
        "import util\n"
        "print('#' * (2 << 20))\n\n"
        "def func_predict(test_data, test_label):\n    return 0.5, 0.25\n\n"
        "def main():\n    util.accuracy(func_predict, util.loaddata())\n\n"
        "main()\n"
    )
    outcome = score(
        notebook_zip(tmp_path, cell), demo_testset, backend, tmp_path, labelled_allowed=True
    )
    assert outcome.status == "scored", outcome.error
    assert (outcome.accuracy, outcome.loss) == (0.25, 0.5)
    assert outcome.self_reported


# --------------------------------------------------------------------------- scores


def test_the_course_template_reports_the_same_accuracy_as_a_direct_computation(
    backend: SandboxBackend, demo_testset: Path, tmp_path: Path
) -> None:
    x, t = demodata.load("train")
    folder = build_legacy_template(tmp_path / "submission", x, t, epochs=3)
    path = zip_folder(folder, tmp_path / "legacy.zip")
    outcome = score(path, demo_testset, backend, tmp_path)
    assert outcome.status == "scored", outcome.error

    # util.accuracy by hand, unsandboxed: makedataset's preprocessing, batches of 500,
    # a mean weighted by batch size.
    model = load_legacy_model(folder)
    data, labels = demodata.load("test")
    inputs = (data / data.max()).astype("float32").reshape(-1, 28 * 28)
    accuracies, losses, sizes = [], [], []
    for start in range(0, len(inputs), 500):
        batch, label = inputs[start : start + 500], labels[start : start + 500]
        accuracies.append(model.accuracy(batch, label))
        losses.append(model.loss(batch, label))
        sizes.append(len(batch))
    # Scored on the host from what the label stand-in recorded: trusted, to the last digit.
    assert outcome.accuracy == float(np.dot(accuracies, sizes) / np.sum(sizes))
    assert outcome.contract == "legacy"
    assert outcome.self_reported is False
    assert outcome.untrusted is False
    assert outcome.metrics is not None and sum(map(sum, outcome.metrics.confusion)) == 14500
    # This cross_entropy_error indexes with the labels: the loss is not observable.
    assert outcome.loss is None
    assert any(note.startswith("loss: not observable") for note in outcome.notes)


def test_a_func_predict_that_reports_a_perfect_score_gets_what_its_model_earned(
    backend: SandboxBackend, demo_testset: Path, tmp_path: Path
) -> None:
    x, t = demodata.load("train")
    cheat = LEGACY_TEMPLATE_CELL.replace(
        "    return loss, accuracy # 編集不可", "    return 0.01, 1.0 # 編集不可"
    )
    assert cheat != LEGACY_TEMPLATE_CELL
    folder = build_legacy_template(tmp_path / "submission", x, t, epochs=1, cell=cheat)
    outcome = score(zip_folder(folder, tmp_path / "cheat.zip"), demo_testset, backend, tmp_path)
    assert outcome.status == "scored", outcome.error
    # The returned 1.0 is never read: the score is what the model's answers earned.
    assert outcome.accuracy is not None and outcome.accuracy < 0.9
    assert outcome.self_reported is False


def test_verified_metrics_equal_a_numpy_reference(
    backend: SandboxBackend, demo_testset: Path, params: dict, tmp_path: Path
) -> None:
    folder = build_verified_numpy(tmp_path / "submission", params, output="scores")
    outcome = score(zip_folder(folder, tmp_path / "v.zip"), demo_testset, backend, tmp_path)
    assert outcome.status == "scored", outcome.error
    assert outcome.metrics is not None

    data, labels = demodata.load("test")
    logits = verified_numpy_forward(params, data)
    true = labels.argmax(axis=1)
    predicted = logits.argmax(axis=1)
    shifted = logits - logits.max(axis=1, keepdims=True)
    probabilities = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    loss = -np.log(probabilities[np.arange(len(true)), true] + 1e-7).sum() / len(true)
    confusion = np.zeros((15, 15), dtype=int)
    for i, j in zip(true, predicted, strict=True):
        confusion[i, j] += 1
    per_class = confusion.diagonal() / confusion.sum(axis=1)

    assert outcome.accuracy == (predicted == true).sum() / len(true)
    assert outcome.loss == round(loss, 4)  # a learner-chosen number, kept as shown
    assert outcome.metrics.confusion == confusion.tolist()
    assert outcome.metrics.per_class_accuracy == pytest.approx(per_class.tolist(), abs=1e-15)
    assert outcome.metrics.balanced_accuracy == pytest.approx(per_class.mean(), abs=1e-15)
    assert outcome.metrics.score_kind == "logits"
    assert outcome.self_reported is False


def test_a_verified_container_has_no_label_file_mounted(
    small_testset: Path, demo_testset: Path, params: dict, tmp_path: Path
) -> None:
    seen: list[dict[str, Any]] = []
    backend = make_backend("docker", on_started=seen.append)
    folder = build_verified_numpy(tmp_path / "v", params)
    outcome = score(zip_folder(folder, tmp_path / "v.zip"), small_testset, backend, tmp_path)
    assert outcome.status == "scored", outcome.error
    mounts = seen[0]["Mounts"]
    assert "/work/1_data/test_data.npy" in {m["Destination"] for m in mounts}
    for mount in mounts:
        assert "label" not in mount["Destination"] and "label" not in mount["Source"]

    # A legacy run has none either; only a course's opt-in labelled rerun has them, which
    # shows the check can fail.
    seen.clear()
    x, t = demodata.load("train")
    legacy = build_legacy_template(tmp_path / "l", x, t, epochs=1)
    outcome = score(zip_folder(legacy, tmp_path / "l.zip"), demo_testset, backend, tmp_path)
    assert outcome.status == "scored", outcome.error
    for mount in seen[0]["Mounts"]:
        assert "label" not in mount["Destination"] and "label" not in mount["Source"]
    seen.clear()
    untraceable = LEGACY_TEMPLATE_CELL.replace(
        "accuracy = model.accuracy(test_data, test_label)",
        "accuracy = model.accuracy(test_data, np.array(test_label.tolist()))",
    )
    legacy = build_legacy_template(tmp_path / "u", x, t, epochs=1, cell=untraceable)
    outcome = score(
        zip_folder(legacy, tmp_path / "u.zip"),
        demo_testset,
        backend,
        tmp_path,
        labelled_allowed=True,
    )
    assert len(seen) == 2 and outcome.self_reported
    assert "/work/1_data/test_label.npy" not in {m["Destination"] for m in seen[0]["Mounts"]}
    assert "/work/1_data/test_label.npy" in {m["Destination"] for m in seen[1]["Mounts"]}


# --------------------------------------------------------------------------- hostile notebooks


def test_reading_the_labels_in_the_verified_contract_fails_for_want_of_the_file(
    backend: SandboxBackend, small_testset: Path, tmp_path: Path
) -> None:
    path = notebook_zip(
        tmp_path,
        "import numpy as np\nlabels = np.load('../1_data/test_label.npy')\n\n"
        "def predict(test_data):\n    return labels[: len(test_data)].argmax(axis=1)\n",
    )
    outcome = score(path, small_testset, backend, tmp_path)
    assert "FileNotFoundError" in failed_with(outcome, ErrorClass.LEARNER_EXCEPTION)


def test_a_fork_bomb_ends_in_a_verdict_and_leaves_nothing_running(
    backend: SandboxBackend, small_testset: Path, tmp_path: Path
) -> None:
    token = f"katakana-bomb-{os.getpid()}-{time.monotonic_ns()}"
    cell = (
        "import os\n"
        "for _ in range(100000):\n"
        "    if os.fork() == 0:\n"
        f"        os.execv('/bin/sh', ['sh', '-c', 'sleep 600; :', '{token}'])\n\n"
        "def predict(x):\n    pass\n"
    )
    limits = Limits(wall_seconds=10, memory_mb=512, pids=32, cpus=1.0)
    started = time.monotonic()
    name = f"katakana-pipeline-bomb-{backend.name}"
    outcome = score(
        notebook_zip(tmp_path, cell), small_testset, backend, tmp_path, limits=limits, run_name=name
    )
    assert outcome.error is not None
    assert outcome.error.error_class in (ErrorClass.TIME_LIMIT, ErrorClass.LEARNER_EXCEPTION)
    assert time.monotonic() - started < 45
    assert processes_with(token) == []
    _assert_no_container(backend, name)


def test_sleeping_forever_ends_at_the_wall_limit_and_leaves_nothing_running(
    backend: SandboxBackend, small_testset: Path, tmp_path: Path
) -> None:
    token = f"katakana-sleeper-{os.getpid()}-{time.monotonic_ns()}"
    cell = (
        "import subprocess, time\n\ndef predict(x):\n    pass\n\n"
        f"subprocess.Popen(['sh', '-c', 'sleep 600; :', '{token}'], start_new_session=True)\n"
        "while True:\n    time.sleep(1)\n"
    )
    limits = Limits(wall_seconds=4, memory_mb=512, pids=32, cpus=1.0)
    name = f"katakana-pipeline-sleeper-{backend.name}"
    outcome = score(
        notebook_zip(tmp_path, cell), small_testset, backend, tmp_path, limits=limits, run_name=name
    )
    failed_with(outcome, ErrorClass.TIME_LIMIT)
    assert processes_with(token) == []
    _assert_no_container(backend, name)


def _assert_no_container(backend: SandboxBackend, name: str) -> None:
    if backend.name != "docker":
        return
    import docker

    left = docker.from_env().containers.list(all=True, filters={"label": f"{RUN_LABEL}={name}"})
    assert left == []
