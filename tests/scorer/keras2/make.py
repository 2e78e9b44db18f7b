"""Writes the Keras 2 files of this folder: what learners of older course years submitted.

Run it once with TensorFlow 2.15 (Keras 2, the last release before Keras 3), never in CI:

    python3.11 -m venv /tmp/k2 && /tmp/k2/bin/pip install tensorflow-cpu==2.15.1 "numpy<2"
    /tmp/k2/bin/python tests/scorer/keras2/make.py

It trains nothing: a seeded CNN of the course's shape is enough to prove that the file
format is read. ``model.h5`` is the whole model (``model.save('model.h5')``, Keras 2's
HDF5 format), ``weights.h5`` the weights alone (``model.save_weights('weights.h5')``),
``expected.npy`` Keras 2's own answers for the first 10 demo test images of each
class (150, in class order), which the test compares with Keras 3's.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow import keras

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

import demodata  # noqa: E402

assert tf.__version__.startswith("2.15"), tf.__version__  # Keras 2.15, its own tf.keras
tf.keras.utils.set_random_seed(0)
model = keras.Sequential(
    [
        keras.Input((28, 28, 1)),
        keras.layers.Conv2D(8, 3, activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Flatten(),
        keras.layers.Dense(15, activation="softmax"),
    ]
)
data, labels = demodata.load("test")
rows = np.concatenate([np.flatnonzero(labels[:, c] == 1)[:10] for c in range(15)])
inputs = data[rows]
x = ((255.0 - inputs) / 255.0).transpose(0, 2, 3, 1).astype("float32")
model.save(HERE / "model.h5")
model.save_weights(HERE / "weights.h5")
np.save(HERE / "expected.npy", model.predict(x, verbose=0))
print("tensorflow", tf.__version__, "wrote", sorted(p.name for p in HERE.iterdir()))
