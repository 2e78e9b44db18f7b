"""Keras and GPU-trained PyTorch submissions score in the CPU sandbox as a direct run does.

Each zip is scored twice on 1,500 demo test images: through the Docker sandbox
(the offline CPU image, which has no GPU) and with the process backend, the host's own
Python, as the local check runs it; the two must agree exactly. The Keras models cover
how learners save them (``.keras``, ``.h5``, weights only with the architecture in
their code; and files written by Keras 2, in ``keras2/``) and how they import Keras
(``import keras``, ``from tensorflow import keras``, ``tf.keras``). The PyTorch models
are saved "from CUDA": this host has no GPU, so a serialization tagger makes
``torch.save`` write the location tag ``cuda:0`` that a GPU-trained model carries, which
a bare ``torch.load`` refuses on a CPU-only machine.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import demodata
from sandbox.base import Limits
from scorer.errors import ErrorClass
from scorer.pipeline import ScoreConfig, ScoreOutcome, score_zip
from scorer.translation import translator
from tests.learner_models import write_notebook, zip_folder
from tests.sandbox.conftest import IMAGE, make_backend

pytestmark = pytest.mark.docker
# What a course gives a run by default (server/settings.py): TensorFlow starts threads
# per core and needs the memory of its runtime.
LIMITS = Limits(wall_seconds=120, memory_mb=4096, pids=256, cpus=2.0)

KERAS_PREDICT = """
def predict(test_data):
    x = ((255.0 - test_data) / 255.0).transpose(0, 2, 3, 1).astype("float32")
    return model.predict(x, batch_size=500, verbose=0)
"""
KERAS_ARCHITECTURE = """
def make_model():
    return keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Conv2D(8, 3, activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Flatten(),
        keras.layers.Dense(15, activation="softmax"),
    ])
"""
# (import line, how the model is loaded, file the model is saved to, save call)
KERAS_CASES = {
    "keras_file": ("import keras", "model = keras.models.load_model('m.keras')", "m.keras"),
    "h5_from_tensorflow": (
        "from tensorflow import keras",
        "model = keras.models.load_model('m.h5')",
        "m.h5",
    ),
    "weights_and_code_tf_keras": (
        "import tensorflow as tf\nkeras = tf.keras",
        "model = make_model()\nmodel.load_weights('m.weights.h5')",
        "m.weights.h5",
    ),
}

TORCH_NET = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3)
        self.fc = nn.Linear(8 * 13 * 13, 15)

    def forward(self, x):
        x = torch.max_pool2d(torch.relu(self.conv(x)), 2)
        return self.fc(x.flatten(1))
"""
TORCH_PREDICT = """
def predict(test_data):
    x = torch.from_numpy((255.0 - test_data) / 255.0).float().to(device)
    with torch.no_grad():
        return model(x).cpu().numpy()
"""
TORCH_CASES = {
    # What GPU learners write: device chosen by is_available, bare torch.load.
    "state_dict": (
        "import torch\nfrom net import Net\n"
        "device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')\n"
        "model = Net()\nmodel.load_state_dict(torch.load('net.pt'))\n"
        "if torch.cuda.is_available():\n    model = model.cuda()\nmodel.eval()\n"
    ),
    "whole_model": (
        "import torch\nimport net\n"
        "device = 'cuda' if torch.cuda.is_available() else 'cpu'\n"
        "model = torch.load('model.pt', weights_only=False).to(device)\nmodel.eval()\n"
    ),
}


@pytest.fixture(scope="module")
def demo_testset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """100 demo test images per class: TensorFlow's start-up, not predict, is the cost."""
    folder = tmp_path_factory.mktemp("demo-testset")
    data, labels = demodata.load("test")
    rows = np.concatenate([np.flatnonzero(labels[:, c] == 1)[:100] for c in range(15)])
    np.save(folder / "test_data.npy", data[rows])
    np.save(folder / "test_label.npy", labels[rows])
    folder.chmod(0o755)
    for path in folder.iterdir():
        path.chmod(0o644)
    return folder


def score(zip_path: Path, testset: Path, backend_name: str, work: Path) -> ScoreOutcome:
    backend = make_backend(backend_name)
    config = ScoreConfig(
        backend=backend,
        image=IMAGE,
        work_root=work / f"runs-{backend_name}",
        limits=LIMITS,
        python=backend.python,
    )
    run_name = f"katakana-frameworks-test-{uuid.uuid4().hex[:8]}"
    return score_zip(zip_path, testset, run_name=run_name, config=config)


def assert_docker_scores_as_a_direct_run(zip_path: Path, testset: Path, work: Path) -> None:
    served = score(zip_path, testset, "docker", work)
    assert served.status == "scored", served.error
    direct = score(zip_path, testset, "process", work)
    assert direct.status == "scored", direct.error
    assert served.accuracy == direct.accuracy
    assert served.loss == direct.loss
    assert served.metrics is not None and direct.metrics is not None
    assert served.metrics.to_dict() == direct.metrics.to_dict()


# --------------------------------------------------------------------------- Keras


def keras_model(seed: int = 0) -> Any:
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(seed)
    namespace: dict[str, Any] = {"keras": keras}
    exec(KERAS_ARCHITECTURE, namespace)
    return namespace["make_model"]()


@pytest.mark.parametrize("case", list(KERAS_CASES))
def test_a_keras_submission_scores_in_docker_as_a_direct_run(
    case: str, demo_testset: Path, tmp_path: Path
) -> None:
    imports, load, filename = KERAS_CASES[case]
    folder = tmp_path / "submission"
    folder.mkdir()
    model = keras_model()
    if filename.endswith(".weights.h5"):
        model.save_weights(folder / filename)
    else:
        model.save(folder / filename)
    architecture = KERAS_ARCHITECTURE if "make_model" in load else ""
    write_notebook(folder, f"{imports}\nimport numpy as np\n{architecture}", load, KERAS_PREDICT)
    assert_docker_scores_as_a_direct_run(
        zip_folder(folder, tmp_path / "s.zip"), demo_testset, tmp_path
    )


KERAS2 = Path(__file__).resolve().parent / "keras2"  # written by Keras 2.15: make.py
KERAS2_CASES = {
    # What older course years submitted: model.save('model.h5') under Keras 2.
    "whole_model_h5": (
        "from tensorflow import keras",
        "model = keras.models.load_model('model.h5')",
    ),
    # model.save_weights('weights.h5') under Keras 2, the architecture in the notebook.
    "weights_h5_and_code": (
        "import keras",
        "model = make_model()\nmodel.load_weights('weights.h5')",
    ),
}


def test_keras_3_reads_keras_2_files_and_answers_as_keras_2_did() -> None:
    keras = pytest.importorskip("keras")
    data, labels = demodata.load("test")
    rows = np.concatenate([np.flatnonzero(labels[:, c] == 1)[:10] for c in range(15)])
    x = ((255.0 - data[rows]) / 255.0).transpose(0, 2, 3, 1).astype("float32")
    expected = np.load(KERAS2 / "expected.npy")
    whole = keras.models.load_model(KERAS2 / "model.h5")
    weights_only = keras_model(seed=1)  # other weights, replaced by the file's
    weights_only.load_weights(KERAS2 / "weights.h5")
    for model in (whole, weights_only):
        np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("case", list(KERAS2_CASES))
def test_a_keras_2_h5_submission_scores_in_docker_as_a_direct_run(
    case: str, demo_testset: Path, tmp_path: Path
) -> None:
    pytest.importorskip("keras")
    imports, load = KERAS2_CASES[case]
    folder = tmp_path / "submission"
    folder.mkdir()
    for name in ("model.h5", "weights.h5"):
        (folder / name).write_bytes((KERAS2 / name).read_bytes())
    architecture = KERAS_ARCHITECTURE if "make_model" in load else ""
    write_notebook(folder, f"{imports}\nimport numpy as np\n{architecture}", load, KERAS_PREDICT)
    assert_docker_scores_as_a_direct_run(
        zip_folder(folder, tmp_path / "s.zip"), demo_testset, tmp_path
    )


def test_a_numpy_submission_that_only_imports_keras_scores(
    demo_testset: Path, tmp_path: Path
) -> None:
    # Real learners leave `import keras` at the top of a numpy notebook.
    folder = tmp_path / "submission"
    write_notebook(
        folder,
        "import numpy as np\nimport keras\nfrom tensorflow.keras import layers",
        "def predict(test_data):\n    return np.zeros(len(test_data), dtype=np.int64)\n",
    )
    outcome = score(zip_folder(folder, tmp_path / "s.zip"), demo_testset, "docker", tmp_path)
    assert outcome.status == "scored", outcome.error


# --------------------------------------------------------------------------- PyTorch from CUDA


@contextlib.contextmanager
def saved_as_if_on_cuda() -> Iterator[None]:
    """``torch.save`` tags every CPU storage ``cuda:0``, as a GPU-trained model's are."""
    import torch.serialization as serialization

    def tag(obj: Any) -> str | None:
        return "cuda:0" if getattr(obj, "device", None) is not None else None

    def never(obj: Any, location: str) -> None:
        return None

    entry = (0, tag, never)
    serialization._package_registry.insert(0, entry)  # type: ignore[attr-defined]
    try:
        yield
    finally:
        serialization._package_registry.remove(entry)  # type: ignore[attr-defined]


def torch_submission(folder: Path, case: str) -> Path:
    torch = pytest.importorskip("torch")
    folder.mkdir()
    (folder / "net.py").write_text(TORCH_NET)
    namespace: dict[str, Any] = {}
    exec(compile(TORCH_NET, str(folder / "net.py"), "exec"), namespace)
    torch.manual_seed(0)
    net = namespace["Net"]()
    net.__class__.__module__ = "net"  # pickled by reference, as the learner's module
    with saved_as_if_on_cuda():
        if case == "state_dict":
            torch.save(net.state_dict(), folder / "net.pt")
        else:
            import sys
            import types

            module = types.ModuleType("net")
            module.Net = net.__class__  # type: ignore[attr-defined]
            sys.modules["net"] = module
            try:
                torch.save(net, folder / "model.pt")
            finally:
                del sys.modules["net"]
    return folder


def test_the_cuda_tag_really_stops_a_bare_load_on_this_cpu(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this host has a GPU")
    folder = torch_submission(tmp_path / "s", "state_dict")
    with pytest.raises(RuntimeError, match="CUDA"):
        torch.load(folder / "net.pt")


@pytest.mark.parametrize("case", list(TORCH_CASES))
def test_a_model_saved_on_a_gpu_scores_on_a_cpu_worker_as_a_direct_run(
    case: str, demo_testset: Path, tmp_path: Path
) -> None:
    folder = torch_submission(tmp_path / "submission", case)
    write_notebook(folder, TORCH_CASES[case], TORCH_PREDICT)
    assert_docker_scores_as_a_direct_run(
        zip_folder(folder, tmp_path / "s.zip"), demo_testset, tmp_path
    )


def test_code_that_insists_on_cuda_is_told_so_in_the_learners_language(
    demo_testset: Path, tmp_path: Path
) -> None:
    folder = torch_submission(tmp_path / "submission", "state_dict")
    write_notebook(
        folder,
        "import torch\nfrom net import Net\ndevice = 'cuda'\n"
        "model = Net().cuda()\nmodel.load_state_dict(torch.load('net.pt'))\n",
        TORCH_PREDICT,
    )
    outcome = score(zip_folder(folder, tmp_path / "s.zip"), demo_testset, "docker", tmp_path)
    assert outcome.status == "failed"
    assert outcome.error is not None
    assert outcome.error.error_class is ErrorClass.LEARNER_EXCEPTION
    assert outcome.error.code == "cuda_unavailable"
    assert "CUDA GPU" in outcome.error.render()
    japanese = outcome.error.render(translator("ja"))
    assert "GPU" in japanese and japanese != outcome.error.render()
