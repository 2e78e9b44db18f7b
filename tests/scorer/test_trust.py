"""Trusted scores: issue 12's attacks as real hostile zips through the real Docker backend.

Each attack once worked: labels written into an exception's name and read back on the
result page, test images carried out in an error message, a legacy score forged as
trusted, a hostile output file crashing the host reader into an infrastructure retry.
Each test here runs the zip for real and asserts the attack no longer works. Beside
them, legacy zips written the way the course writes them score trusted, with the
accuracy a labelled run of the same zip prints, to the last digit.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest

import demodata
from sandbox.base import SandboxBackend
from sandbox.process_backend import ProcessBackend
from scorer.errors import ErrorClass
from scorer.legacy import parse_legacy_stdout
from scorer.pipeline import ScoreConfig, ScoreOutcome, score_zip
from tests import learner_models as lm
from tests.course_models import WHOLE_ARRAY_CELL, build_deep_convnet
from tests.sandbox.conftest import ATTACK_LIMITS
from tests.scorer.test_pipeline import IMAGE, make_backend

pytestmark = [pytest.mark.docker, pytest.mark.slow]
LIMITS = ATTACK_LIMITS.__class__(wall_seconds=120, memory_mb=2048, pids=64, cpus=1.0)
# Class 0 (ア) is 1,300 of the 14,500 test images: what "always class 0" earns.
CLASS_ZERO_SHARE = 1300 / 14500


@pytest.fixture(scope="module")
def docker() -> SandboxBackend:
    return make_backend("docker")


@pytest.fixture(scope="module")
def testset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("trust-testset")
    data, labels = demodata.load("test")
    np.save(folder / "test_data.npy", data)
    np.save(folder / "test_label.npy", labels)
    folder.chmod(0o755)
    for path in folder.iterdir():
        path.chmod(0o644)
    return folder


@pytest.fixture(scope="module")
def secret() -> str:
    """What a hostile run would carry out: the first test image's first dark pixels."""
    data, _ = demodata.load("test")
    dark = np.flatnonzero(data[0].ravel() < 128)[:6]
    return "_".join(str(int(i)) for i in dark)


def score(
    path: Path, testset: Path, backend: SandboxBackend, tmp: Path, **options: object
) -> ScoreOutcome:
    config = ScoreConfig(
        backend=backend,
        image=IMAGE,
        work_root=tmp / "runs",
        limits=LIMITS,
        python=getattr(backend, "python", "python3"),
        **options,  # type: ignore[arg-type]
    )
    return score_zip(
        path, testset, run_name=f"katakana-trust-{uuid.uuid4().hex[:8]}", config=config
    )


def legacy_zip(tmp: Path, cell: str, *, extra: dict[str, str] | None = None) -> Path:
    x, t = demodata.load("train")
    folder = lm.build_legacy_template(tmp / "submission", x, t, epochs=1, cell=cell)
    for name, text in (extra or {}).items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return lm.zip_folder(folder, tmp / "legacy.zip")


def shown_to_learner(outcome: ScoreOutcome) -> str:
    """Everything a learner sees of a failed run when logs are off."""
    assert outcome.error is not None
    return f"{outcome.error.render()} {outcome.error.params} {outcome.error.code}"


# --------------------------------------------------------------------------- course-like zips


def labelled_run_prints(folder: Path, testset: Path, tmp: Path) -> tuple[float, float]:
    """Run the zip's folder the labelled way (labels beside the data) and parse its lines."""
    lm.stage_legacy_util(folder)
    spec = lm.harness_spec(folder, testset, tmp / "labelled-out", contract="legacy")
    result = ProcessBackend().run(spec)
    return parse_legacy_stdout(result.stdout.decode())


@pytest.mark.parametrize(
    "variant",
    ["two_layer_whole_object", "accuracy_over_the_whole_array", "deep_convnet_params_dict"],
)
def test_a_course_like_legacy_zip_scores_trusted_as_a_labelled_run_prints(
    docker: SandboxBackend, testset: Path, tmp_path: Path, variant: str
) -> None:
    x, t = demodata.load("train")
    folder = tmp_path / "submission"
    if variant == "deep_convnet_params_dict":
        # Own common/ CNN with BatchNormalization; loss() runs Dropout with train_flg=True;
        # accuracy() walks each batch of 500 in batches of 100; t * log(y) cross-entropy.
        build_deep_convnet(folder, x, t)
    else:
        cell = WHOLE_ARRAY_CELL if variant == "accuracy_over_the_whole_array" else None
        lm.build_legacy_template(folder, x, t, epochs=3, cell=cell)
    outcome = score(lm.zip_folder(folder, tmp_path / "l.zip"), testset, docker, tmp_path)
    assert outcome.status == "scored", outcome.error
    assert outcome.self_reported is False and outcome.untrusted is False

    loss, accuracy = labelled_run_prints(folder, testset, tmp_path)
    assert outcome.accuracy == accuracy  # to the last digit
    assert 0.1 < accuracy < 1.0
    assert outcome.metrics is not None
    assert outcome.metrics.balanced_accuracy == pytest.approx(
        float(np.mean(np.diag(outcome.metrics.confusion) / np.sum(outcome.metrics.confusion, 1)))
    )
    if variant == "deep_convnet_params_dict":
        # The one-hot cross-entropy shows the probabilities: the loss is observed (the
        # labelled run's Dropout draws other masks, so it agrees only roughly).
        assert outcome.loss is not None and outcome.loss == pytest.approx(loss, abs=0.25)
    else:
        assert outcome.loss is None


# --------------------------------------------------------------------------- leaks


LEAK_LABELS_CELL = """\
import os, sys
import numpy as np
import util

def makedataset():
    return util.loaddata().reshape(-1, 784) / 255

def func_predict(test_data, test_label):
    here = os.path.exists("../1_data/test_label.npy")
    data = np.load("../1_data/test_data.npy")
    dark = "_".join(str(int(i)) for i in np.flatnonzero(data[0].ravel() < 128)[:6])
    base = KeyError if here else ValueError
    leak = type("Leak_" + dark, (base,), {})
    exec(compile("raise leak()", "<" + dark + ">", "exec"), {"leak": leak})

def main():
    util.accuracy(func_predict, makedataset())

main()
"""


def test_a_legacy_run_has_no_labels_and_its_error_text_stays_inside(
    docker: SandboxBackend, testset: Path, tmp_path: Path, secret: str
) -> None:
    outcome = score(legacy_zip(tmp_path, LEAK_LABELS_CELL), testset, docker, tmp_path)
    assert outcome.error is not None
    assert outcome.error.error_class is ErrorClass.LEARNER_EXCEPTION
    shown = shown_to_learner(outcome)
    # ValueError: the label file was not there. The class name and the made-up file
    # name carried test pixels: only the builtin base class is shown.
    assert "ValueError" in shown and "KeyError" not in shown
    assert secret not in shown and "Leak_" not in shown
    assert secret in outcome.error.detail  # instructors still see the real traceback


VERIFIED_LEAKS = {
    "exception_class_and_file": (
        "    leak = type('Leak_' + dark(x), (ValueError,), {})\n"
        "    exec(compile('raise leak()', '<' + dark(x) + '>', 'exec'), {'leak': leak})\n"
    ),
    "module_name": "    __import__('px_' + dark(x))\n",
    "sys_exit_text": "    import sys; sys.exit('px ' + dark(x))\n",
    "own_result_json": (
        "    import json, os\n"
        "    json.dump({'ok': False, 'error_class': 'learner_exception', 'code': 'exception',\n"
        "               'params': {'exception_mro': 'L' + dark(x),\n"
        "                          'location': dark(x) + ', line 1', 'module': dark(x)},\n"
        "               'detail': dark(x), 'entry': dark(x), 'contract': 'verified', 'n': 1,\n"
        "               'seconds': {}}, open('/out/result.json', 'w'))\n"
        "    os._exit(1)\n"
    ),
    "own_result_code": (
        "    import json, os\n"
        "    json.dump({'ok': False, 'error_class': 'learner_exception', 'code': 'x' + dark(x),\n"
        "               'params': {}, 'detail': '', 'entry': '', 'contract': 'verified',\n"
        "               'n': 1, 'seconds': {}}, open('/out/result.json', 'w'))\n"
        "    os._exit(1)\n"
    ),
    "wrong_shape": "    return np.zeros((0, int(dark(x).replace('_', '')[:12])))\n",
}


@pytest.mark.parametrize("attack", sorted(VERIFIED_LEAKS))
def test_test_images_do_not_come_back_in_a_verified_error(
    docker: SandboxBackend, testset: Path, tmp_path: Path, secret: str, attack: str
) -> None:
    cell = (
        "import numpy as np\n\n"
        "def dark(x):\n"
        "    return '_'.join(str(int(i)) for i in np.flatnonzero(x[0].ravel() < 128)[:6])\n\n"
        "def predict(x):\n" + VERIFIED_LEAKS[attack]
    )
    folder = tmp_path / "submission"
    lm.write_notebook(folder, cell)
    outcome = score(lm.zip_folder(folder, tmp_path / "v.zip"), testset, docker, tmp_path)
    assert outcome.status == "failed" and outcome.error is not None
    shown = shown_to_learner(outcome)
    assert secret not in shown and secret.replace("_", "")[:12] not in shown


# --------------------------------------------------------------------------- forgeries

ALWAYS_ZERO = """\
import numpy as np
import util

def makedataset():
    return util.loaddata()

class Zero:
    def accuracy(self, x, t):
        return np.mean(np.zeros(len(x), dtype=int) == np.argmax(t, axis=1))

def func_predict(test_data, test_label):
    return 0.0, Zero().accuracy(test_data, test_label)

def main():
    util.accuracy(func_predict, makedataset())
"""

FORGERIES = {
    # numpy patched so that every comparison counts as right.
    "patched_numpy": ALWAYS_ZERO.replace(
        "def main():",
        "np.mean = lambda a, *k, **kw: 1.0\nnp.sum = lambda a, *k, **kw: len(a)\n\ndef main():",
    )
    + "\nmain()\n",
    # The run rewrites the files the host reads after util.py is done.
    "rewritten_out_files": ALWAYS_ZERO
    + (
        "\nmain()\nimport json, os\n"
        "json.dump({'accuracy': 0.0, 'test_accuracy': 1.0}, open('/out/decoy.json', 'w'))\n"
        "print('Test loss: 0.0')\nprint('Test accuracy: 1.0')\n"
        "np.save('/out/legacy_classes.npy', np.zeros(14500, dtype=np.int16))\n"
    ),
}


@pytest.mark.parametrize("forgery", sorted(FORGERIES))
def test_a_legacy_model_that_always_answers_zero_gets_what_zero_earns(
    docker: SandboxBackend, testset: Path, tmp_path: Path, forgery: str
) -> None:
    outcome = score(legacy_zip(tmp_path, FORGERIES[forgery]), testset, docker, tmp_path)
    assert outcome.status == "scored", outcome.error
    assert outcome.accuracy == CLASS_ZERO_SHARE
    assert outcome.self_reported is False


def test_shadowing_the_servers_util_gets_no_score(
    docker: SandboxBackend, testset: Path, tmp_path: Path
) -> None:
    shadow = {
        "util/__init__.py": "def loaddata():\n    return []\ndef accuracy(f, d):\n"
        "    print('Test loss: 0.0')\n    print('Test accuracy: 1.0')\n"
    }
    outcome = score(
        legacy_zip(tmp_path, ALWAYS_ZERO + "\nmain()\n", extra=shadow), testset, docker, tmp_path
    )
    assert outcome.status == "failed" and outcome.error is not None
    assert (outcome.error.error_class, outcome.error.code) == (
        ErrorClass.WRONG_OUTPUT,
        "legacy_not_recorded",
    )


def test_labels_turned_into_a_tensor_are_a_not_charged_refusal_by_default(
    docker: SandboxBackend, testset: Path, tmp_path: Path
) -> None:
    untraceable = lm.LEGACY_TEMPLATE_CELL.replace(
        "    accuracy = model.accuracy(test_data, test_label)\n",
        "    import torch\n"
        "    t = torch.tensor(test_label).argmax(1).numpy()\n"
        "    accuracy = model.accuracy(test_data, t)\n",
    )
    outcome = score(legacy_zip(tmp_path, untraceable), testset, docker, tmp_path)
    assert outcome.status == "failed" and outcome.error is not None
    assert outcome.error.error_class is ErrorClass.LEGACY_UNTRACEABLE
    assert not outcome.error.error_class.charged_to_learner
    assert "predict(test_data)" in outcome.error.render()


# --------------------------------------------------------------------------- host readers

READER_ATTACKS = {
    "nested_result_json": (
        "import os\nopen('/out/result.json', 'w').write('[' * 30000 + ']' * 30000)\nos._exit(0)\n"
    ),
    "npy_header_bomb": (
        "import os, util\nutil.accuracy(func_predict, makedataset())\n"
        "h = b\"{'descr': '<i2', 'fortran_order': False, 'shape': \" + b'(' * 3000 + b')' * 3000"
        " + b'}'\n"
        "h += b' ' * (-(len(h) + 11) % 64) + b'\\n'\n"
        "open('/out/legacy_classes.npy', 'wb').write(b'\\x93NUMPY\\x01\\x00' + len(h).to_bytes(2,"
        " 'little') + h)\n"
    ),
    # A tree deeper than PATH_MAX in /out, and an error located in a file whose
    # name is longer than the OS allows (the host checks locations against the zip).
    "path_longer_than_the_os_limit": (
        "import os\nos.chdir('/out')\n"
        "for i in range(40):\n    os.mkdir('d' * 200)\n    os.chdir('d' * 200)\n"
        "open('f', 'w').write('x')\nos.chdir('/work/submission')\n"
        "exec(compile('raise ValueError()', 'd/' * 3000 + 'x.py', 'exec'))\n"
    ),
}


@pytest.mark.parametrize("attack", sorted(READER_ATTACKS))
def test_a_hostile_output_file_is_the_learners_error_not_an_infrastructure_retry(
    docker: SandboxBackend, testset: Path, tmp_path: Path, attack: str
) -> None:
    cell = ALWAYS_ZERO + "\n" + READER_ATTACKS[attack]
    outcome = score(legacy_zip(tmp_path, cell), testset, docker, tmp_path)
    assert outcome.status == "failed" and outcome.error is not None, outcome
    expected = {
        "nested_result_json": "result_invalid",
        "npy_header_bomb": "output_unreadable",
        "path_longer_than_the_os_limit": "exception",
    }
    assert outcome.error.code == expected[attack]
    assert outcome.error.error_class.charged_to_learner
    assert "d/d/" not in shown_to_learner(outcome)
