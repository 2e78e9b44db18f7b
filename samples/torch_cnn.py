"""A small PyTorch CNN for the verified contract: trained here, shipped as a state_dict.

The network's class lives in its own module, ``katakana_net.py``, which goes into the
zip beside the notebook (as learners ship their own code); the notebook imports it and
loads ``katakana_cnn.pt`` with ``weights_only=True`` (no pickle of code). Training runs
on the CPU with a fixed seed and thread count, with random shifts of up to 2 pixels.
"""

from __future__ import annotations

import types
from typing import Any

import numpy as np

STATE_FILE = "katakana_cnn.pt"
MODULE_FILE = "katakana_net.py"

MODULE_SOURCE = '''\
"""カタカナ識別用の小さな CNN（PyTorch）。ノートブックから import して使う。"""
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(32 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 15)
        )

    def forward(self, x):
        return self.classifier(self.features(x))


def preprocess(x):
    """(N, 1, 28, 28) float64 0〜255 → 文字が 1・背景が 0 の float32 テンソル"""
    return torch.from_numpy((255.0 - x) / 255.0).float()
'''

MODEL_CELL = """\
# ==== ここから編集してください（モデルの読み込みは一度だけ）====
# PyTorch の CNN。モデルの定義は同じフォルダの katakana_net.py にある
import torch

from katakana_net import Net, preprocess

torch.set_num_threads(2)
model = Net()
model.load_state_dict(torch.load("katakana_cnn.pt", map_location="cpu", weights_only=True))
model.eval()


def forward(x):
    with torch.no_grad():
        return model(x).numpy()
# ==== ここまで ====
"""


def net_module() -> types.ModuleType:
    """``katakana_net`` built from MODULE_SOURCE (not registered in sys.modules)."""
    module = types.ModuleType("katakana_net")
    exec(compile(MODULE_SOURCE, MODULE_FILE, "exec"), module.__dict__)
    return module


def train(images: np.ndarray, onehot: np.ndarray, *, epochs: int = 8, seed: int = 0) -> Any:
    """Adam on mini-batches of 64 with random shifts; returns the state_dict."""
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(2)
    rng = np.random.RandomState(seed)
    module = net_module()
    model = module.Net()
    optimiser = torch.optim.Adam(model.parameters(), lr=2e-3)
    x = module.preprocess(images)
    t = torch.from_numpy(onehot.argmax(axis=1))
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    model.train()
    for _ in range(epochs):
        order = torch.from_numpy(rng.permutation(len(x)))
        offsets = rng.randint(0, 5, size=(len(x), 2))
        shifted = torch.stack(
            [padded[i, :, dy : dy + 28, dx : dx + 28] for i, (dy, dx) in enumerate(offsets)]
        )
        for start in range(0, len(x), 64):
            batch = order[start : start + 64]
            optimiser.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(shifted[batch]), t[batch])
            loss.backward()
            optimiser.step()
    model.eval()
    return model.state_dict()


def predict_scores(state: Any, images: np.ndarray) -> np.ndarray:
    """Logits of the trained net, computed in this process (for direct comparison)."""
    import torch

    module = net_module()
    model = module.Net()
    model.load_state_dict(state)
    model.eval()
    with torch.no_grad():
        return np.asarray(model(module.preprocess(images)).numpy())
