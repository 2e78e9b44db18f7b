"""Legacy submissions written the way the course's material writes them, for tests.

The course teaches a numpy CNN from scratch (``common/`` with im2col convolutions,
pooling, BatchNormalization, Dropout and a ``DeepConvNet`` whose ``accuracy`` walks the
data in batches of 100, as in "ゼロから作るDeep Learning"); learners pickle a params dict
and load it in ``func_predict``. The builders here write such a ``common/``, fit the
weights cheaply (random convolution features, a least-squares read-out: a test needs a
real, imperfect model, not a well-trained one) and the course notebook around them.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from tests.learner_models import (
    COMMON_LAYERS,
    LEARNER_UTIL,
    LEGACY_TEMPLATE_CELL,
    N_CLASSES,
    importable,
    write_notebook,
)

# common/functions.py: the one-hot form of the cross-entropy (t * log y).
COMMON_FUNCTIONS = """\
import numpy as np


def softmax(x):
    x = x - np.max(x, axis=-1, keepdims=True)
    return np.exp(x) / np.sum(np.exp(x), axis=-1, keepdims=True)


def cross_entropy_error(y, t):
    if y.ndim == 1:
        t = t.reshape(1, t.size)
        y = y.reshape(1, y.size)
    batch_size = y.shape[0]
    return -np.sum(t * np.log(y + 1e-7)) / batch_size
"""

# common/cnn_layers.py: the book's im2col layers, BatchNormalization and Dropout.
COMMON_CNN_LAYERS = """\
import numpy as np

from common.functions import cross_entropy_error, softmax


def im2col(input_data, filter_h, filter_w, stride=1, pad=0):
    N, C, H, W = input_data.shape
    out_h = (H + 2 * pad - filter_h) // stride + 1
    out_w = (W + 2 * pad - filter_w) // stride + 1
    img = np.pad(input_data, [(0, 0), (0, 0), (pad, pad), (pad, pad)], "constant")
    col = np.zeros((N, C, filter_h, filter_w, out_h, out_w))
    for y in range(filter_h):
        y_max = y + stride * out_h
        for x in range(filter_w):
            x_max = x + stride * out_w
            col[:, :, y, x, :, :] = img[:, :, y:y_max:stride, x:x_max:stride]
    return col.transpose(0, 4, 5, 1, 2, 3).reshape(N * out_h * out_w, -1)


class Convolution:
    def __init__(self, W, b, stride=1, pad=0):
        self.W, self.b, self.stride, self.pad = W, b, stride, pad

    def forward(self, x):
        FN, C, FH, FW = self.W.shape
        N, C, H, W = x.shape
        out_h = 1 + int((H + 2 * self.pad - FH) / self.stride)
        out_w = 1 + int((W + 2 * self.pad - FW) / self.stride)
        col = im2col(x, FH, FW, self.stride, self.pad)
        out = np.dot(col, self.W.reshape(FN, -1).T) + self.b
        return out.reshape(N, out_h, out_w, -1).transpose(0, 3, 1, 2)


class Pooling:
    def __init__(self, pool_h, pool_w, stride=1, pad=0):
        self.pool_h, self.pool_w, self.stride, self.pad = pool_h, pool_w, stride, pad

    def forward(self, x):
        N, C, H, W = x.shape
        out_h = int(1 + (H - self.pool_h) / self.stride)
        out_w = int(1 + (W - self.pool_w) / self.stride)
        col = im2col(x, self.pool_h, self.pool_w, self.stride, self.pad)
        col = col.reshape(-1, self.pool_h * self.pool_w)
        out = np.max(col, axis=1)
        return out.reshape(N, out_h, out_w, C).transpose(0, 3, 1, 2)


class ReLU:
    def forward(self, x, train_flg=False):
        return np.maximum(x, 0)


class Affine:
    def __init__(self, W, b):
        self.W, self.b = W, b

    def forward(self, x, train_flg=False):
        return np.dot(x.reshape(x.shape[0], -1), self.W) + self.b


class BatchNormalization:
    def __init__(self, gamma, beta, running_mean, running_var):
        self.gamma, self.beta = gamma, beta
        self.running_mean, self.running_var = running_mean, running_var

    def forward(self, x, train_flg=False):
        if train_flg:
            mu = x.mean(axis=0)
            var = np.mean((x - mu) ** 2, axis=0)
        else:
            mu, var = self.running_mean, self.running_var
        return self.gamma * (x - mu) / np.sqrt(var + 10e-7) + self.beta


class Dropout:
    def __init__(self, dropout_ratio=0.5):
        self.dropout_ratio = dropout_ratio

    def forward(self, x, train_flg=True):
        if train_flg:
            return x * (np.random.rand(*x.shape) > self.dropout_ratio)
        return x * (1.0 - self.dropout_ratio)


class SoftmaxWithLoss:
    def forward(self, x, t):
        self.t = t
        self.y = softmax(x)
        return cross_entropy_error(self.y, self.t)
"""

# common/deep_convnet.py: conv-pool, then affine-BN-ReLU-Dropout-affine; loss in train mode.
COMMON_DEEP_CONVNET = """\
import pickle

import numpy as np

from common.cnn_layers import (
    Affine, BatchNormalization, Convolution, Dropout, Pooling, ReLU, SoftmaxWithLoss,
)


class DeepConvNet:
    def __init__(self):
        self.params = {}

    def load_params(self, file_name="params.pkl"):
        with open(file_name, "rb") as f:
            self.params = pickle.load(f)
        p = self.params
        self.layers = [
            Convolution(p["W1"], p["b1"], stride=1, pad=1),
            ReLU(),
            Pooling(pool_h=2, pool_w=2, stride=2),
            Affine(p["W2"], p["b2"]),
            BatchNormalization(p["gamma"], p["beta"], p["mean"], p["var"]),
            ReLU(),
            Dropout(0.5),
            Affine(p["W3"], p["b3"]),
        ]
        self.last_layer = SoftmaxWithLoss()

    def predict(self, x, train_flg=False):
        for layer in self.layers:
            if isinstance(layer, (BatchNormalization, Dropout)):
                x = layer.forward(x, train_flg)
            else:
                x = layer.forward(x)
        return x

    def loss(self, x, t):
        y = self.predict(x, train_flg=True)
        return self.last_layer.forward(y, t)

    def accuracy(self, x, t, batch_size=100):
        if t.ndim != 1:
            t = np.argmax(t, axis=1)
        acc = 0.0
        for i in range(int(x.shape[0] / batch_size)):
            tx = x[i * batch_size:(i + 1) * batch_size]
            tt = t[i * batch_size:(i + 1) * batch_size]
            y = self.predict(tx, train_flg=False)
            y = np.argmax(y, axis=1)
            acc += np.sum(y == tt)
        return acc / x.shape[0]
"""

# func_predict for the DeepConvNet: the params dict and the learner's own common/ code.
DEEP_CONVNET_CELL = LEGACY_TEMPLATE_CELL.replace(
    """    # 配列形式変更
    test_data = test_data.reshape(-1, 28*28)
""",
    """    # 配列形式変更
    test_data = test_data.reshape(-1, 1, 28, 28)
""",
).replace(
    """    with open("katakana_model.pickle", "rb") as f:
        model = pickle.load(f)
""",
    """    from common.deep_convnet import DeepConvNet
    model = DeepConvNet()
    model.load_params("params.pkl")
""",
)

# The template with func_predict's own accuracy over the whole batch, in one go.
WHOLE_ARRAY_CELL = LEGACY_TEMPLATE_CELL.replace(
    "    accuracy = model.accuracy(test_data, test_label)\n",
    "    pred = np.argmax(model.predict(test_data), axis=1)\n"
    "    accuracy = np.mean(pred == np.argmax(test_label, axis=1))\n",
)


def write_course_common(folder: Path) -> None:
    common = folder / "common"
    common.mkdir(parents=True, exist_ok=True)
    (common / "__init__.py").write_text("")
    (common / "layers.py").write_text(COMMON_LAYERS)
    (common / "functions.py").write_text(COMMON_FUNCTIONS)
    (common / "cnn_layers.py").write_text(COMMON_CNN_LAYERS)
    (common / "deep_convnet.py").write_text(COMMON_DEEP_CONVNET)


def fit_deep_convnet(x: np.ndarray, t: np.ndarray, *, seed: int = 0) -> dict[str, np.ndarray]:
    """Params for ``DeepConvNet``: random 3x3 filters and hidden layer, BN statistics
    measured on ``x``, and a least-squares read-out of the one-hot labels."""
    rng = np.random.RandomState(seed)
    params: dict[str, Any] = {
        "W1": rng.randn(8, 1, 3, 3) * 0.3,
        "b1": np.zeros(8),
        "W2": rng.randn(8 * 14 * 14, 96) * 0.05,
        "b2": np.zeros(96),
        "gamma": np.ones(96),
        "beta": np.zeros(96),
        "mean": np.zeros(96),
        "var": np.ones(96),
        "W3": np.zeros((96, N_CLASSES)),
        "b3": np.zeros(N_CLASSES),
    }
    inputs = (x / x.max()).astype("float32").reshape(-1, 1, 28, 28)
    modules = {
        "common": "",
        "common.functions": COMMON_FUNCTIONS,
        "common.cnn_layers": COMMON_CNN_LAYERS,
    }
    with importable(modules) as mods:
        layers = mods["common.cnn_layers"]
        hidden = layers.Affine(params["W2"], params["b2"]).forward(
            layers.Pooling(2, 2, stride=2).forward(
                np.maximum(layers.Convolution(params["W1"], params["b1"], pad=1).forward(inputs), 0)
            )
        )
    params["mean"], params["var"] = hidden.mean(axis=0), hidden.var(axis=0)
    normal = np.maximum((hidden - params["mean"]) / np.sqrt(params["var"] + 10e-7), 0) * 0.5
    design = np.hstack([normal, np.ones((len(normal), 1))])
    solution = np.linalg.solve(design.T @ design + np.eye(design.shape[1]), design.T @ t)
    params["W3"], params["b3"] = solution[:-1], solution[-1]
    return params


def build_deep_convnet(folder: Path, x: np.ndarray, t: np.ndarray) -> Path:
    """A params dict + the learner's own common/ DeepConvNet, in the course notebook."""
    folder.mkdir(parents=True, exist_ok=True)
    write_course_common(folder)
    (folder / "util.py").write_text(LEARNER_UTIL)
    with open(folder / "params.pkl", "wb") as f:
        pickle.dump(fit_deep_convnet(x, t), f)
    write_notebook(folder, DEEP_CONVNET_CELL)
    return folder
