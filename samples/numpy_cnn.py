"""A convolutional network in numpy alone (im2col), trained here, run by the notebook.

``MODEL_CELL`` is the notebook's model-loading cell; training executes the very same
source, so the notebook's ``forward`` is the function that was trained (no second copy
to drift). The network: 5x5 convolution (16 filters) → ReLU → 2x2 max pooling →
affine (100) → ReLU → affine (15), on ink-is-one inputs ``(255 - x) / 255``. Training
adds what the forward pass does not need: the backward pass and Adam.
"""

from __future__ import annotations

from typing import Any

import numpy as np

PARAMS_FILE = "katakana_cnn_params.pickle"

MODEL_CELL = '''\
# ==== ここから編集してください（モデルの読み込みは一度だけ）====
# numpy だけで実装した CNN: 畳み込み (im2col) → ReLU → 最大プーリング → 全結合 → ReLU → 全結合
with open("katakana_cnn_params.pickle", "rb") as f:
    params = pickle.load(f)

FILTER = 5
POOL = 2


def im2col(x, size):
    """(N, C, H, W) → (N * OH * OW, C * size * size)、ストライド 1・パディングなし"""
    n, c, h, w = x.shape
    oh, ow = h - size + 1, w - size + 1
    col = np.empty((n, c, size, size, oh, ow), dtype=x.dtype)
    for i in range(size):
        for j in range(size):
            col[:, :, i, j] = x[:, :, i:i + oh, j:j + ow]
    return col.transpose(0, 4, 5, 1, 2, 3).reshape(n * oh * ow, -1)


def preprocess(x):
    # 文字を 1、背景を 0 にする
    return ((255.0 - x) / 255.0).astype(np.float32)


def conv_relu(x):
    n, _, h, w = x.shape
    out = im2col(x, FILTER) @ params["W_conv"] + params["b_conv"]
    return np.maximum(out, 0).reshape(n, h - FILTER + 1, w - FILTER + 1, -1)


def max_pool(a):
    n, oh, ow, f = a.shape
    return a.reshape(n, oh // POOL, POOL, ow // POOL, POOL, f).max(axis=(2, 4))


def forward(x):
    h = max_pool(conv_relu(x)).reshape(len(x), -1)
    h = np.maximum(0, h @ params["W1"] + params["b1"])
    return h @ params["W2"] + params["b2"]
# ==== ここまで ====
'''

N_FILTERS = 16
HIDDEN = 100


def model_namespace(params: dict[str, np.ndarray]) -> dict[str, Any]:
    """Execute MODEL_CELL with ``params`` in place of the pickle it loads."""
    source = MODEL_CELL.split("FILTER = 5", 1)[1]
    namespace: dict[str, Any] = {"np": np, "params": params}
    exec(compile("FILTER = 5" + source, "<numpy cnn cell>", "exec"), namespace)
    return namespace


def init_params(rng: np.random.RandomState) -> dict[str, np.ndarray]:
    pooled = 12 * 12 * N_FILTERS

    def he(fan_in: int, shape: tuple[int, ...]) -> np.ndarray:
        return (rng.randn(*shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)

    return {
        "W_conv": he(25, (25, N_FILTERS)),
        "b_conv": np.zeros(N_FILTERS, np.float32),
        "W1": he(pooled, (pooled, HIDDEN)),
        "b1": np.zeros(HIDDEN, np.float32),
        "W2": he(HIDDEN, (HIDDEN, 15)),
        "b2": np.zeros(15, np.float32),
    }


def gradients(
    ns: dict[str, Any], x: np.ndarray, t: np.ndarray
) -> tuple[float, dict[str, np.ndarray]]:
    """Cross-entropy loss and its gradients for a preprocessed batch x and class ids t."""
    p = ns["params"]
    n = len(x)
    col = ns["im2col"](x, 5)
    z = col @ p["W_conv"] + p["b_conv"]
    a = np.maximum(z, 0).reshape(n, 24, 24, N_FILTERS)
    pooled = ns["max_pool"](a)
    windows = a.reshape(n, 12, 2, 12, 2, N_FILTERS)
    mask = windows == pooled[:, :, None, :, None, :]
    h0 = pooled.reshape(n, -1)
    z1 = h0 @ p["W1"] + p["b1"]
    h1 = np.maximum(z1, 0)
    scores = h1 @ p["W2"] + p["b2"]
    scores = scores - scores.max(axis=1, keepdims=True)
    prob = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
    loss = float(-np.log(prob[np.arange(n), t] + 1e-7).mean())
    ds = prob
    ds[np.arange(n), t] -= 1
    ds /= n
    grads = {"W2": h1.T @ ds, "b2": ds.sum(axis=0)}
    dz1 = (ds @ p["W2"].T) * (z1 > 0)
    grads.update(W1=h0.T @ dz1, b1=dz1.sum(axis=0))
    dpooled = (dz1 @ p["W1"].T).reshape(n, 12, 1, 12, 1, N_FILTERS)
    dz = (mask * dpooled).reshape(n * 576, N_FILTERS) * (z > 0)
    grads.update(W_conv=col.T @ dz, b_conv=dz.sum(axis=0))
    return loss, grads


def shift(x: np.ndarray, rng: np.random.RandomState, most: int = 2) -> np.ndarray:
    """Each image moved by up to ``most`` pixels (ink-is-one images, zero padding)."""
    n = len(x)
    padded = np.pad(x, ((0, 0), (0, 0), (most, most), (most, most)))
    dy, dx = rng.randint(0, 2 * most + 1, size=(2, n))
    return np.stack([padded[i, :, dy[i] : dy[i] + 28, dx[i] : dx[i] + 28] for i in range(n)])


def train(
    images: np.ndarray, onehot: np.ndarray, *, epochs: int = 12, seed: int = 0
) -> dict[str, np.ndarray]:
    """Adam on mini-batches of 100 with random shifts; returns the params dict."""
    rng = np.random.RandomState(seed)
    params = init_params(rng)
    ns = model_namespace(params)
    x = ns["preprocess"](images)
    t = onehot.argmax(axis=1)
    moments = {k: (np.zeros_like(v), np.zeros_like(v)) for k, v in params.items()}
    step, lr, beta1, beta2 = 0, 1e-3, 0.9, 0.999
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for start in range(0, len(x), 100):
            batch = order[start : start + 100]
            _, grads = gradients(ns, shift(x[batch], rng), t[batch])
            step += 1
            for key, grad in grads.items():
                m, v = moments[key]
                m += (1 - beta1) * (grad - m)
                v += (1 - beta2) * (grad * grad - v)
                m_hat = m / (1 - beta1**step)
                v_hat = v / (1 - beta2**step)
                params[key] -= (lr * m_hat / (np.sqrt(v_hat) + 1e-8)).astype(np.float32)
    return params
