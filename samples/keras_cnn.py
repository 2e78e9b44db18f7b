"""A small Keras 3 CNN (TensorFlow backend) for the verified contract, saved as ``.keras``.

Saved the way the course's Keras learners save: ``model.save("katakana_cnn.keras")``
after ``model.fit``; the notebook loads it with ``keras.models.load_model``. Keras wants
channels last, so the notebook's ``preprocess`` transposes the course's (N, 1, 28, 28)
images. Training runs on the CPU with fixed seeds, deterministic ops and two threads, with
random shifts of up to 2 pixels drawn per epoch (as the PyTorch sample does).
"""

from __future__ import annotations

from typing import Any

import numpy as np

MODEL_FILE = "katakana_cnn.keras"

MODEL_CELL = """\
# ==== ここから編集してください（モデルの読み込みは一度だけ）====
# Keras (TensorFlow) の CNN。学習後に model.save("katakana_cnn.keras") で保存したもの
import keras

model = keras.models.load_model("katakana_cnn.keras")


def preprocess(x):
    # (N, 1, 28, 28) 0〜255 → 文字が 1・背景が 0、Keras の並び (N, 28, 28, 1)
    return ((255.0 - x) / 255.0).transpose(0, 2, 3, 1).astype("float32")


def forward(x):
    return model.predict(x, batch_size=500, verbose=0)
# ==== ここまで ====
"""


def preprocess(images: np.ndarray) -> np.ndarray:
    """The notebook's ``preprocess`` (kept equal by ``tests/samples``)."""
    return np.asarray(((255.0 - images) / 255.0).transpose(0, 2, 3, 1).astype("float32"))


def make_model() -> Any:
    import keras

    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Flatten(),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(15, activation="softmax"),
        ]
    )


def _deterministic_cpu(seed: int) -> None:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    try:  # only possible before TensorFlow's first op in this process
        tf.config.threading.set_intra_op_parallelism_threads(2)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass


def shifted(images: np.ndarray, rng: np.random.RandomState) -> np.ndarray:
    """Each image moved by up to 2 pixels in x and y (zero padding: background)."""
    padded = np.pad(images, ((0, 0), (2, 2), (2, 2), (0, 0)))
    offsets = rng.randint(0, 5, size=(len(images), 2))
    return np.stack([padded[i, dy : dy + 28, dx : dx + 28] for i, (dy, dx) in enumerate(offsets)])


def train(images: np.ndarray, onehot: np.ndarray, *, epochs: int = 8, seed: int = 0) -> Any:
    """Adam on mini-batches of 64 with random shifts; returns the trained model."""
    import keras

    _deterministic_cpu(seed)
    rng = np.random.RandomState(seed)
    model = make_model()
    model.compile(
        optimizer=keras.optimizers.Adam(2e-3),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    x = preprocess(images)
    for _ in range(epochs):
        model.fit(shifted(x, rng), onehot.astype("float32"), batch_size=64, epochs=1, verbose=0)
    return model


def save(model: Any, path: Any) -> None:
    model.save(path)
