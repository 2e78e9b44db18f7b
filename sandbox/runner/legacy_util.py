# このファイルは編集してもかまいませんが、識別精度算出ウェブサイトで計算するときには
# このファイルが自動的に上書きされるため、ここでの変更は反映されません。
"""The server's util.py for the legacy contract (course generation G3).

Staged over the learner's util.py in the submission folder before the run. It behaves
like the course's G3 util: batches of 500, a 14,500 size check that prints the course's
Japanese messages in place of the numbers, and a batch-size-weighted mean printed as
the final ``Test loss:`` / ``Test accuracy:`` lines, which the host parses.

It adds one decoy batch: 500 test images drawn across the classes, each with a wrong
label, passed to ``func_predict`` among the real batches at a random position. Its
result goes to ``decoy.json`` in ``$KATAKANA_OUT`` (default ``/out``), never to stdout.
An honest ``func_predict`` with accuracy ``a`` scores at most about ``1 - a`` on it;
one that reports a high accuracy whatever the labels scores high on it too.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import numpy as np

EXPECTED_SIZE = 14500
DECOY_SIZE = 500
N_CLASSES = 15


def loaddata() -> Any:
    """テストデータを読む関数"""
    return np.load("../1_data/test_data.npy")


def accuracy(func_predict: Callable[[Any, Any], Any], test_data: Any) -> None:
    """
    精度を計算する関数
    label_pred : numpy 1D array
    """
    # データ数のチェック
    data_size = len(test_data)
    if data_size != EXPECTED_SIZE:
        if data_size < EXPECTED_SIZE:
            error = "label_predのサイズが足りていません"
        else:
            error = "label_predのサイズが多すぎます"
        print(data_size, error)
        print("Test loss:", error)
        print("Test accuracy:", error)
        return

    test_label = np.load("../1_data/test_label.npy")

    # サーバーへの負荷を軽減するため、ミニバッチ処理で行う
    batch_size = 500
    minibatch_num = int(np.ceil(data_size / batch_size))

    # Own generator: the learner's global np.random state must stay untouched.
    rng = np.random.default_rng()
    decoy_position = int(rng.integers(0, minibatch_num + 1))
    decoy = None

    li_loss = []
    li_accuracy = []
    li_num = []
    index = np.arange(data_size)
    for mn in range(minibatch_num):
        if mn == decoy_position:
            decoy = _run_decoy(func_predict, test_data, test_label, rng)
        print(mn)
        mask = index[batch_size * mn : batch_size * (mn + 1)]
        data = test_data[mask]
        label = test_label[mask]
        loss, accuracy = func_predict(data, label)
        print(loss, accuracy)
        li_loss.append(loss)
        li_accuracy.append(accuracy)
        li_num.append(len(data))
    if decoy is None:
        decoy = _run_decoy(func_predict, test_data, test_label, rng)

    test_loss = np.dot(li_loss, li_num) / np.sum(li_num)
    test_accuracy = np.dot(li_accuracy, li_num) / np.sum(li_num)
    decoy["position"] = decoy_position
    decoy["test_loss"] = _as_float(test_loss)
    decoy["test_accuracy"] = _as_float(test_accuracy)
    _write_decoy(decoy)

    print("Test loss:", test_loss)
    print("Test accuracy:", test_accuracy)
    return


def decoy_indices(test_label: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """DECOY_SIZE indices spread evenly over the classes, in shuffled order."""
    classes = np.argmax(test_label, axis=1)
    per_class = np.full(N_CLASSES, DECOY_SIZE // N_CLASSES)
    per_class[rng.choice(N_CLASSES, DECOY_SIZE % N_CLASSES, replace=False)] += 1
    chosen = [
        rng.choice(np.flatnonzero(classes == c), count, replace=False)
        for c, count in enumerate(per_class)
    ]
    return rng.permutation(np.concatenate(chosen))


def wrong_labels(
    test_label: np.ndarray, indices: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """One-hot labels with every class moved by a random non-zero offset."""
    true = np.argmax(test_label[indices], axis=1)
    wrong = (true + rng.integers(1, N_CLASSES, size=len(indices))) % N_CLASSES
    labels = np.zeros((len(indices), N_CLASSES), dtype=test_label.dtype)
    labels[np.arange(len(indices)), wrong] = 1
    return labels


def _run_decoy(
    func_predict: Callable[[Any, Any], Any],
    test_data: Any,
    test_label: np.ndarray,
    rng: np.random.Generator,
) -> dict[str, Any]:
    result: dict[str, Any] = {"n": DECOY_SIZE, "loss": None, "accuracy": None, "error": None}
    try:
        indices = decoy_indices(test_label, rng)
        loss, accuracy = func_predict(test_data[indices], wrong_labels(test_label, indices, rng))
        result["loss"] = _as_float(loss)
        result["accuracy"] = _as_float(accuracy)
    except Exception as exc:  # the decoy must never break an honest run
        result["error"] = type(exc).__name__
    return result


def _as_float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


def _write_decoy(decoy: dict[str, Any]) -> None:
    out_dir = os.environ.get("KATAKANA_OUT", "/out")
    try:
        with open(os.path.join(out_dir, "decoy.json"), "w", encoding="utf-8") as f:
            json.dump(decoy, f)
    except OSError:
        pass  # no writable out dir (e.g. a learner running this copy by hand)
