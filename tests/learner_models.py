"""Builders of small, REAL learner submissions for tests.

Every builder writes a submission folder (what a learner zips) and returns its path:
real trained models (numpy from scratch in the course's ``common/layers.py`` style, or
PyTorch), real notebooks, real pickles. Data is synthetic but shaped like the course's:
float64 (N, 1, 28, 28), whole numbers 0-255, white background, dark strokes; one-hot
int32 labels. Nothing here depends on ``demodata/``.
"""

from __future__ import annotations

import contextlib
import functools
import json
import pickle
import sys
import types
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

N_CLASSES = 15
# The hidden test set's make-up: 1,300 each of ア-オ, 800 each of カ-ソ, ordered by class.
TEST_SET_COUNTS = (1300,) * 5 + (800,) * 10


# --------------------------------------------------------------------------- data


def make_dataset(
    counts: int | Sequence[int], *, seed: int = 0, noise: float = 0.35, prototype_seed: int = 42
) -> tuple[np.ndarray, np.ndarray]:
    """Images (N,1,28,28) float64 0-255 and one-hot int32 labels, ordered by class.

    Each class has a fixed random stroke prototype (same ``prototype_seed`` → same
    classes across train and test sets); each image is the prototype with pixels flipped
    at random, so a small net reaches a high but imperfect accuracy.
    """
    per_class = [counts] * N_CLASSES if isinstance(counts, int) else list(counts)
    prototypes = np.random.RandomState(prototype_seed).rand(N_CLASSES, 28 * 28) < 0.12
    rng = np.random.RandomState(seed)
    images, labels = [], []
    for cls, count in enumerate(per_class):
        ink = np.repeat(prototypes[cls][None, :], count, axis=0)
        flip = rng.rand(count, 28 * 28) < noise * 0.12
        ink = ink ^ flip
        pixels = 255.0 - ink * rng.randint(180, 256, size=ink.shape)
        images.append(pixels)
        labels.append(np.full(count, cls))
    x = np.concatenate(images).reshape(-1, 1, 28, 28).astype(np.float64)
    classes = np.concatenate(labels)
    t = np.zeros((len(classes), N_CLASSES), dtype=np.int32)
    t[np.arange(len(classes)), classes] = 1
    return x, t


@functools.lru_cache(maxsize=2)
def make_test_set(*, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """A stand-in for the hidden test set: 14,500 images in the real class counts and order.

    Cached (treat the arrays as read-only): several test modules need the full size.
    """
    return make_dataset(TEST_SET_COUNTS, seed=seed)


def write_data_dir(folder: Path, x: np.ndarray, t: np.ndarray | None) -> Path:
    """``1_data/`` with test_data.npy (and test_label.npy for the legacy contract)."""
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "test_data.npy", x)
    if t is not None:
        np.save(folder / "test_label.npy", t)
    return folder


def preprocess(x: np.ndarray) -> np.ndarray:
    """The course template's default preprocessing in makedataset()."""
    return (x / x.max()).astype("float32").reshape(-1, 28 * 28)


# --------------------------------------------------------------------------- course library

COMMON_LAYERS = '''\
"""Layers in the course's style: forward / backward with cached activations."""
from collections import OrderedDict

import numpy as np


def softmax(x):
    x = x - np.max(x, axis=-1, keepdims=True)
    return np.exp(x) / np.sum(np.exp(x), axis=-1, keepdims=True)


def cross_entropy_error(y, t):
    if y.ndim == 1:
        t = t.reshape(1, t.size)
        y = y.reshape(1, y.size)
    if t.size == y.size:
        t = t.argmax(axis=1)
    batch_size = y.shape[0]
    return -np.sum(np.log(y[np.arange(batch_size), t] + 1e-7)) / batch_size


class ReLU:
    def __init__(self):
        self.mask = None

    def forward(self, x):
        self.mask = (x <= 0)
        out = x.copy()
        out[self.mask] = 0
        return out

    def backward(self, dout):
        dout[self.mask] = 0
        return dout


class Affine:
    def __init__(self, W, b):
        self.W = W
        self.b = b
        self.x = None
        self.dW = None
        self.db = None

    def forward(self, x):
        self.x = x
        return np.dot(x, self.W) + self.b

    def backward(self, dout):
        dx = np.dot(dout, self.W.T)
        self.dW = np.dot(self.x.T, dout)
        self.db = np.sum(dout, axis=0)
        return dx


class SoftmaxWithLoss:
    def __init__(self):
        self.loss = None
        self.y = None
        self.t = None

    def forward(self, x, t):
        self.t = t
        self.y = softmax(x)
        self.loss = cross_entropy_error(self.y, self.t)
        return self.loss

    def backward(self, dout=1):
        batch_size = self.t.shape[0]
        if self.t.size == self.y.size:
            return (self.y - self.t) / batch_size
        dx = self.y.copy()
        dx[np.arange(batch_size), self.t] -= 1
        return dx / batch_size


class TwoLayerNet:
    def __init__(self, input_size, hidden_size, output_size, weight_init_std=0.01, seed=0):
        rng = np.random.RandomState(seed)
        self.params = {}
        self.params["W1"] = weight_init_std * rng.randn(input_size, hidden_size)
        self.params["b1"] = np.zeros(hidden_size)
        self.params["W2"] = weight_init_std * rng.randn(hidden_size, output_size)
        self.params["b2"] = np.zeros(output_size)

        self.layers = OrderedDict()
        self.layers["Affine1"] = Affine(self.params["W1"], self.params["b1"])
        self.layers["Relu1"] = ReLU()
        self.layers["Affine2"] = Affine(self.params["W2"], self.params["b2"])
        self.lastLayer = SoftmaxWithLoss()

    def predict(self, x):
        for layer in self.layers.values():
            x = layer.forward(x)
        return x

    def loss(self, x, t):
        y = self.predict(x)
        return self.lastLayer.forward(y, t)

    def accuracy(self, x, t):
        y = self.predict(x)
        y = np.argmax(y, axis=1)
        if t.ndim != 1:
            t = np.argmax(t, axis=1)
        return np.sum(y == t) / float(x.shape[0])

    def gradient(self, x, t):
        self.loss(x, t)
        dout = self.lastLayer.backward(1)
        for layer in reversed(list(self.layers.values())):
            dout = layer.backward(dout)
        return {
            "W1": self.layers["Affine1"].dW, "b1": self.layers["Affine1"].db,
            "W2": self.layers["Affine2"].dW, "b2": self.layers["Affine2"].db,
        }
'''


@contextlib.contextmanager
def importable(modules: dict[str, str]) -> Iterator[dict[str, types.ModuleType]]:
    """Temporarily register modules built from source (so pickle records their names)."""
    saved = {name: sys.modules.get(name) for name in modules}
    built: dict[str, types.ModuleType] = {}
    try:
        for name, source in modules.items():
            module = types.ModuleType(name)
            if "." not in name:
                module.__path__ = []  # a package, so "common.layers" can sit under it
            sys.modules[name] = module
            exec(compile(source, f"<{name}>", "exec"), module.__dict__)
            built[name] = module
            parent, _, child = name.rpartition(".")
            if parent:
                setattr(sys.modules[parent], child, module)
        yield built
    finally:
        for name, old in saved.items():
            if old is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old


def write_common(folder: Path) -> None:
    (folder / "common").mkdir(parents=True, exist_ok=True)
    (folder / "common" / "__init__.py").write_text("")
    (folder / "common" / "layers.py").write_text(COMMON_LAYERS)


def train_two_layer_net(
    net: Any, x: np.ndarray, t: np.ndarray, *, epochs: int = 10, lr: float = 0.02, seed: int = 0
) -> Any:
    """Minibatch SGD on preprocessed x (N, 784) and one-hot t, in place; returns net.

    A small learning rate: the white background makes every input a large constant
    vector, and plain SGD at the course's usual 0.1 kills the ReLUs.
    """
    rng = np.random.RandomState(seed)
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for start in range(0, len(x), 50):
            batch = order[start : start + 50]
            grads = net.gradient(x[batch], t[batch])
            for key in ("W1", "b1", "W2", "b2"):
                net.params[key] -= lr * grads[key]
    return net


def trained_params(x: np.ndarray, t: np.ndarray, *, hidden: int = 16, epochs: int = 10) -> dict:
    """W1, b1, W2, b2 of a TwoLayerNet trained on raw images x and one-hot t."""
    with importable({"common": "", "common.layers": COMMON_LAYERS}) as mods:
        net = mods["common.layers"].TwoLayerNet(784, hidden, N_CLASSES, weight_init_std=0.05)
        train_two_layer_net(net, preprocess(x), t, epochs=epochs)
        return {k: v.copy() for k, v in net.params.items()}


# --------------------------------------------------------------------------- notebooks


def notebook(*cells: str, markdown: str = "# 課題投稿用Notebook") -> dict[str, Any]:
    """An nbformat-4 notebook: one markdown cell, then the given code cells."""

    def code(source: str) -> dict[str, Any]:
        return {
            "cell_type": "code",
            "execution_count": None,
            "metadata": {},
            "outputs": [],
            "source": source.splitlines(keepends=True),
        }

    md = {"cell_type": "markdown", "metadata": {}, "source": [markdown]}
    return {
        "cells": [md, *(code(c) for c in cells)],
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python", "version": "3.7.3"},
        },
        "nbformat": 4,
        "nbformat_minor": 2,
    }


def write_notebook(folder: Path, *cells: str, name: str = "submit_katakana.ipynb") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(json.dumps(notebook(*cells), ensure_ascii=False, indent=1), encoding="utf-8")
    return path


# The course template's single code cell (legacy contract), as the course distributes it.
LEGACY_TEMPLATE_CELL = '''\
import numpy as np
import glob
import os,sys
import util
import pickle

def makedataset():
    """
    データセットをつくる関数です。
    自由に編集してください。
    """

    # 次の行は変更しないこと
    test_data= util.loaddata()

    # 以下は自由に編集しても構いません
    # 必要な前処理をここに記述してください

    # 正規化
    test_data = test_data / test_data.max()
    test_data = test_data.astype('float32')

    # 配列形式変更
    test_data = test_data.reshape(-1, 28*28)

    return test_data


def func_predict(test_data, test_label):
    """
    予測する関数
    data : 画像データ
    return loss, accuracy
    引数とreturn以外は、自由に編集してください
    """

    # 以下を自由に編集してください
    with open("katakana_model.pickle", "rb") as f:
        model = pickle.load(f)

    accuracy = model.accuracy(test_data, test_label)
    loss  = model.loss(test_data, test_label)

    return loss, accuracy # 編集不可


def main():
    """
    編集しないでください。
    """
    # テスト用データをつくる
    test_data = makedataset()

    # 予測し精度を算出する
    util.accuracy(func_predict, test_data)

    return


if __name__=="__main__":
    main()
'''

# The learner's own util.py copy: the server overwrites it before a legacy run.
LEARNER_UTIL = """\
import numpy as np

def loaddata():
    return np.load("../1_data/train_data.npy")

def accuracy(func_predict, test_data):
    print("Test loss: 0.0")
    print("Test accuracy: 1.0")
"""


def build_legacy_template(
    folder: Path, x: np.ndarray, t: np.ndarray, *, epochs: int = 10, cell: str | None = None
) -> Path:
    """The unmodified course template with a whole TwoLayerNet pickled to katakana_model.pickle.

    ``cell`` replaces the template cell (to build cheating or broken variants).
    """
    folder.mkdir(parents=True, exist_ok=True)
    write_common(folder)
    (folder / "util.py").write_text(LEARNER_UTIL)
    with importable({"common": "", "common.layers": COMMON_LAYERS}) as mods:
        net = mods["common.layers"].TwoLayerNet(784, 16, N_CLASSES, weight_init_std=0.05)
        train_two_layer_net(net, preprocess(x), t, epochs=epochs)
        with open(folder / "katakana_model.pickle", "wb") as f:
            pickle.dump(net, f, protocol=3)
    write_notebook(folder, cell if cell is not None else LEGACY_TEMPLATE_CELL)
    return folder


def load_legacy_model(folder: Path) -> Any:
    """Unpickle a template model in the test process (for direct, unsandboxed checks)."""
    with (
        importable({"common": "", "common.layers": COMMON_LAYERS}),
        open(folder / "katakana_model.pickle", "rb") as f,
    ):
        return pickle.load(f)


VERIFIED_NUMPY_CELL = """\
import pickle
import numpy as np

with open("params.pickle", "rb") as f:
    params = pickle.load(f)


def forward(x):
    x = x.reshape(len(x), -1) / 255.0
    h = np.maximum(0, x @ params["W1"] + params["b1"])
    return h @ params["W2"] + params["b2"]


def predict(test_data):
    return {result}
"""


def verified_numpy_forward(params: dict, batch: np.ndarray) -> np.ndarray:
    """The same computation as VERIFIED_NUMPY_CELL's forward(), for direct comparison."""
    x = batch.reshape(len(batch), -1) / 255.0
    h = np.maximum(0, x @ params["W1"] + params["b1"])
    return h @ params["W2"] + params["b2"]


def build_verified_numpy(
    folder: Path, params: dict, *, output: str = "ids", extra_cells: Sequence[str] = ()
) -> Path:
    """Verified contract: predict(test_data) from a params-dict pickle.

    ``output``: "ids" (argmax class ids) or "scores" (raw (b, 15) logits).
    """
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "params.pickle", "wb") as f:
        pickle.dump(params, f)
    result = "np.argmax(forward(test_data), axis=1)" if output == "ids" else "forward(test_data)"
    write_notebook(folder, *extra_cells, VERIFIED_NUMPY_CELL.format(result=result))
    return folder


MAGICS_CELL = """\
%matplotlib inline
%load_ext autoreload
%autoreload 2
!pip install some-package-that-does-not-exist
listing = !ls
%time total = 1 + 1
"""


def build_with_magics(folder: Path, params: dict) -> Path:
    """A verified notebook that opens with the magics learners' notebooks carry."""
    return build_verified_numpy(folder, params, extra_cells=[MAGICS_CELL])


MAIN_CLASS_CELL = '''\
import pickle
import numpy as np


class KatakanaNet:
    """Defined in the notebook: its pickle refers to __main__.KatakanaNet."""

    def __init__(self, params):
        self.params = params

    def scores(self, x):
        x = x.reshape(len(x), -1) / 255.0
        h = np.maximum(0, x @ self.params["W1"] + self.params["b1"])
        return h @ self.params["W2"] + self.params["b2"]
'''

MAIN_CLASS_PREDICT_CELL = """\
with open("net.pickle", "rb") as f:
    net = pickle.load(f)


def predict(test_data):
    return np.argmax(net.scores(test_data), axis=1)
"""


def build_main_pickled_class(folder: Path, params: dict) -> Path:
    """A notebook whose model is an instance of a class pickled from ``__main__``."""
    folder.mkdir(parents=True, exist_ok=True)
    main = sys.modules["__main__"]
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec(compile(MAIN_CLASS_CELL, "<notebook>", "exec"), namespace)
    cls = namespace["KatakanaNet"]
    had = hasattr(main, "KatakanaNet")
    old = getattr(main, "KatakanaNet", None)
    main.KatakanaNet = cls  # type: ignore[attr-defined]
    try:
        with open(folder / "net.pickle", "wb") as f:
            pickle.dump(cls(params), f)
    finally:
        if had:
            main.KatakanaNet = old  # type: ignore[attr-defined]
        else:
            del main.KatakanaNet  # type: ignore[attr-defined]
    write_notebook(folder, MAIN_CLASS_CELL, MAIN_CLASS_PREDICT_CELL)
    return folder


TORCH_MODEL_CELL = """\
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 15)
        )

    def forward(self, x):
        return self.body(x / 255.0)
"""

TORCH_PREDICT_CELL = """\
model = Net()
model.load_state_dict(torch.load("model.pt", weights_only=True))
model.eval()


def predict(test_data):
    with torch.no_grad():
        return model(torch.from_numpy(test_data).float())
"""


def torch_net() -> Any:
    """A fresh instance of the notebook's Net class (built from the same source)."""
    namespace: dict[str, Any] = {"__name__": "torch_notebook"}
    exec(compile(TORCH_MODEL_CELL, "<torch notebook>", "exec"), namespace)
    return namespace["Net"]()


def build_torch(folder: Path, x: np.ndarray, t: np.ndarray, *, epochs: int = 3) -> Path:
    """Verified contract with a PyTorch state_dict; predict returns a torch tensor of logits."""
    import torch

    torch.manual_seed(0)
    model = torch_net()
    optimiser = torch.optim.SGD(model.parameters(), lr=0.1)
    inputs = torch.from_numpy(x).float()
    targets = torch.from_numpy(np.argmax(t, axis=1))
    for _ in range(epochs):
        for start in range(0, len(inputs), 64):
            optimiser.zero_grad()
            loss = torch.nn.functional.cross_entropy(
                model(inputs[start : start + 64]), targets[start : start + 64]
            )
            loss.backward()
            optimiser.step()
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), folder / "model.pt")
    write_notebook(folder, TORCH_MODEL_CELL, TORCH_PREDICT_CELL)
    return folder


# --------------------------------------------------------------------------- zips


def zip_folder(folder: Path, zip_path: Path, top: str = "submit_folder") -> Path:
    """Zip ``folder`` the way learners do: one top-level directory named ``top``."""
    folder = Path(folder)
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{top}/", "")
        for path in sorted(folder.rglob("*")):
            name = f"{top}/{path.relative_to(folder).as_posix()}"
            if path.is_dir():
                archive.writestr(name + "/", "")
            else:
                archive.write(path, name)
    return Path(zip_path)


# --------------------------------------------------------------------------- running


def harness_spec(
    submission: Path,
    data_dir: Path,
    out_dir: Path,
    *,
    contract: str = "verified",
    entry: str = "submit_katakana.ipynb",
    wall_seconds: float = 120.0,
    name: str = "katakana-test",
) -> Any:
    """A RunSpec that runs the real harness on ``submission`` with the documented layout."""
    from sandbox.base import Limits, Mount, RunSpec
    from sandbox.runner import RUNNER_DIR

    out_dir.mkdir(parents=True, exist_ok=True)
    return RunSpec(
        name=name,
        image="host",
        command=[
            "python3",
            "/harness/harness.py",
            "--contract",
            contract,
            "--entry",
            entry,
            "--batch-size",
            "500",
            "--data",
            "/work/1_data/test_data.npy",
            "--out",
            "/out",
        ],
        workdir="/work/submission",
        mounts=[
            Mount(submission, "/work/submission"),
            Mount(data_dir, "/work/1_data"),
            Mount(RUNNER_DIR, "/harness"),
        ],
        out_dir=out_dir,
        limits=Limits(wall_seconds=wall_seconds),
    )


def stage_legacy_util(submission: Path) -> None:
    """What the host does before a legacy run: the server's util.py over the learner's."""
    from sandbox.runner import LEGACY_UTIL

    (submission / "util.py").write_bytes(LEGACY_UTIL.read_bytes())
