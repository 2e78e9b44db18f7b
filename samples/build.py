"""Build the sample submissions from the demo training set, reproducibly.

    python -m samples build [--quiet] [--only NAME] [--dist DIR]

writes ``samples/dist/<name>.zip`` (git-ignored), each zipped the way learners zip: one
folder at the top. Seeds are fixed and training is single-process on the CPU, so a
rebuild gives the same models; zip entries carry a fixed timestamp. The whole build
takes well under a minute on two cores.

* ``legacy_numpy_mlp``: the unmodified course template notebook (legacy contract) with
  a whole ``common.layers.TwoLayerNet`` object pickled, and the course's ``common/``;
* ``numpy_cnn_params``: a numpy CNN (im2col) from a params-dict pickle, verified contract;
* ``pytorch_cnn``: a PyTorch CNN state_dict, verified contract;
* ``keras_cnn``: a Keras 3 CNN saved with ``model.save(".keras")``, verified contract.

The verified samples are ``kit/submit_katakana.ipynb`` with only its model-loading
cell (tagged ``katakana-model``) replaced: what the kit tells learners to do.
"""

from __future__ import annotations

import json
import pickle
import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from samples import keras_cnn, numpy_cnn, torch_cnn

REPO = Path(__file__).resolve().parent.parent
DIST = Path(__file__).resolve().parent / "dist"
KIT_NOTEBOOK = REPO / "kit" / "submit_katakana.ipynb"
MODEL_CELL_TAG = "katakana-model"
NOTEBOOK = "submit_katakana.ipynb"
# Training epochs per sample; ``quick`` builds (tests) use one epoch each.
EPOCHS = {"legacy_numpy_mlp": 30, "numpy_cnn_params": 20, "pytorch_cnn": 8, "keras_cnn": 8}
_ZIP_TIME = (2024, 4, 1, 0, 0, 0)

# The course's G3 util.py as learners have it (the server overwrites it before a run).
COURSE_UTIL = '''\
# このファイルは編集してもかまいませんが、識別精度算出ウェブサイトで計算するときには
# このファイルが自動的に上書きされるため、ここでの変更は反映されません。
import numpy as np


def loaddata():
    """テストデータを読む関数"""
    return np.load("../1_data/test_data.npy")


def accuracy(func_predict, test_data):
    """
    精度を計算する関数
    label_pred : numpy 1D array
    """
    # データ数のチェック
    data_size = len(test_data)
    if data_size != 14500:
        if data_size < 14500:
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

    li_loss = []
    li_accuracy = []
    li_num = []
    index = np.arange(data_size)
    for mn in range(minibatch_num):
        print(mn)
        mask = index[batch_size * mn : batch_size * (mn + 1)]
        data = test_data[mask]
        label = test_label[mask]
        loss, accuracy = func_predict(data, label)
        print(loss, accuracy)
        li_loss.append(loss)
        li_accuracy.append(accuracy)
        li_num.append(len(data))

    test_loss = np.dot(li_loss, li_num) / np.sum(li_num)
    test_accuracy = np.dot(li_accuracy, li_num) / np.sum(li_num)

    print("Test loss:", test_loss)
    print("Test accuracy:", test_accuracy)
    return
'''

LEGACY_MARKDOWN = (
    "# 課題投稿用Notebook\n\n"
    "このsubmit_katakana.ipynbファイルを編集し、学習済みモデルなどの必要ファイルを同じフォルダに"
    "おき、そのフォルダをzipしたものを投稿してください。"
)


# --------------------------------------------------------------------------- notebooks


def code_cell(source: str, tags: list[str] | None = None) -> dict[str, Any]:
    return {
        "cell_type": "code",
        "execution_count": None,
        "metadata": {"tags": tags} if tags else {},
        "outputs": [],
        "source": source.splitlines(keepends=True),
    }


def kit_notebook(model_cell: str, kit: Path = KIT_NOTEBOOK) -> dict[str, Any]:
    """The kit's template with its model-loading cell replaced by ``model_cell``."""
    notebook: dict[str, Any] = json.loads(kit.read_text(encoding="utf-8"))
    replaced = 0
    for cell in notebook["cells"]:
        if MODEL_CELL_TAG in cell.get("metadata", {}).get("tags", []):
            cell["source"] = model_cell.splitlines(keepends=True)
            replaced += 1
    if replaced != 1:
        raise ValueError(f"{kit} must have exactly one cell tagged {MODEL_CELL_TAG!r}")
    return notebook


def legacy_notebook(cell: str) -> dict[str, Any]:
    """The course template's layout: one markdown cell, then the single code cell."""
    markdown = {"cell_type": "markdown", "metadata": {}, "source": [LEGACY_MARKDOWN]}
    return {
        "cells": [markdown, code_cell(cell)],
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python", "version": "3.7.3"},
        },
        "nbformat": 4,
        "nbformat_minor": 2,
    }


def write_notebook(folder: Path, notebook: dict[str, Any]) -> Path:
    path = folder / NOTEBOOK
    path.write_text(json.dumps(notebook, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return path


# --------------------------------------------------------------------------- samples


def build_legacy_numpy_mlp(folder: Path, x: np.ndarray, t: np.ndarray, *, epochs: int) -> Path:
    """Course template + whole-object pickle of a common.layers.TwoLayerNet (784-100-15)."""
    from tests.learner_models import (
        COMMON_LAYERS,
        LEGACY_TEMPLATE_CELL,
        importable,
        preprocess,
        train_two_layer_net,
        write_common,
    )

    folder.mkdir(parents=True, exist_ok=True)
    write_common(folder)
    (folder / "util.py").write_text(COURSE_UTIL, encoding="utf-8")
    with importable({"common": "", "common.layers": COMMON_LAYERS}) as modules:
        net = modules["common.layers"].TwoLayerNet(784, 100, 15, weight_init_std=0.05)
        train_two_layer_net(net, preprocess(x), t, epochs=epochs, lr=0.05)
        with open(folder / "katakana_model.pickle", "wb") as f:
            pickle.dump(net, f, protocol=3)  # the course's pickles are protocol 3
    write_notebook(folder, legacy_notebook(LEGACY_TEMPLATE_CELL))
    return folder


def build_numpy_cnn_params(folder: Path, x: np.ndarray, t: np.ndarray, *, epochs: int) -> Path:
    """Kit notebook + numpy im2col CNN whose weights are a params dict in a pickle."""
    folder.mkdir(parents=True, exist_ok=True)
    params = numpy_cnn.train(x, t, epochs=epochs)
    with open(folder / numpy_cnn.PARAMS_FILE, "wb") as f:
        pickle.dump(params, f)
    write_notebook(folder, kit_notebook(numpy_cnn.MODEL_CELL))
    return folder


def build_pytorch_cnn(folder: Path, x: np.ndarray, t: np.ndarray, *, epochs: int) -> Path:
    """Kit notebook + katakana_net.py + a PyTorch state_dict."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    state = torch_cnn.train(x, t, epochs=epochs)
    torch.save(state, folder / torch_cnn.STATE_FILE)
    (folder / torch_cnn.MODULE_FILE).write_text(torch_cnn.MODULE_SOURCE, encoding="utf-8")
    write_notebook(folder, kit_notebook(torch_cnn.MODEL_CELL))
    return folder


def build_keras_cnn(folder: Path, x: np.ndarray, t: np.ndarray, *, epochs: int) -> Path:
    """Kit notebook + a Keras model saved whole as ``.keras`` (architecture and weights)."""
    folder.mkdir(parents=True, exist_ok=True)
    model = keras_cnn.train(x, t, epochs=epochs)
    keras_cnn.save(model, folder / keras_cnn.MODEL_FILE)
    write_notebook(folder, kit_notebook(keras_cnn.MODEL_CELL))
    return folder


Builder = Callable[..., Path]
BUILDERS: dict[str, Builder] = {
    "legacy_numpy_mlp": build_legacy_numpy_mlp,
    "numpy_cnn_params": build_numpy_cnn_params,
    "pytorch_cnn": build_pytorch_cnn,
    "keras_cnn": build_keras_cnn,
}


# --------------------------------------------------------------------------- zips


def zip_submission(folder: Path, zip_path: Path, top: str = "submit_katakana") -> Path:
    """Zip ``folder`` as one top-level folder ``top``, entries sorted, fixed timestamps."""
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        entries = [folder, *sorted(folder.rglob("*"))]
        for path in entries:
            relative = path.relative_to(folder).as_posix()
            name = top if relative == "." else f"{top}/{relative}"
            info = zipfile.ZipInfo(name + "/" if path.is_dir() else name, _ZIP_TIME)
            info.external_attr = (0o40755 if path.is_dir() else 0o100644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, b"" if path.is_dir() else path.read_bytes())
    return zip_path


def build(
    names: list[str] | None = None,
    *,
    dist: Path = DIST,
    quick: bool = False,
    log: Callable[[str], None] = print,
) -> dict[str, Path]:
    """Train and zip the samples ``names`` (default all) into ``dist``; return the zips."""
    import demodata

    x, t = demodata.load("train")
    built = {}
    for name in names or list(BUILDERS):
        started = time.monotonic()
        epochs = 1 if quick else EPOCHS[name]
        with tempfile.TemporaryDirectory(prefix=f"sample-{name}-") as tmp:
            folder = BUILDERS[name](Path(tmp) / name, x, t, epochs=epochs)
            built[name] = zip_submission(folder, dist / f"{name}.zip")
        log(f"{built[name]}  ({time.monotonic() - started:.1f} s)")
    return built


def clean(dist: Path = DIST) -> None:
    shutil.rmtree(dist, ignore_errors=True)
