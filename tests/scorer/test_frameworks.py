"""Which frameworks a submission imports, read from its source without running it."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from scorer.frameworks import (
    frameworks_in_folder,
    frameworks_in_source,
    frameworks_in_zip,
    preload_modules,
    worker_kind,
)


@pytest.mark.parametrize(
    ("source", "found"),
    [
        ("import numpy as np\nimport pickle\n", set()),
        ("import torch\n", {"torch"}),
        ("import torch.nn as nn\n", {"torch"}),
        ("from torch import nn\n", {"torch"}),
        ("import os, keras\n", {"keras"}),
        ("from tensorflow import keras\n", {"tensorflow"}),
        ("import tensorflow as tf\nmodel = tf.keras.models.load_model('m.h5')\n", {"tensorflow"}),
        ("    import torch  # inside a function\n", {"torch"}),
        ("# import torch\nx = 'import keras'\n", set()),
        ("import torchvision\nimport kerastuner\n", set()),
    ],
)
def test_it_reads_the_frameworks_an_import_names(source: str, found: set[str]) -> None:
    assert frameworks_in_source(source) == found


def notebook(*cells: str, nbformat: int = 4) -> bytes:
    code = [{"cell_type": "code", "source": c.splitlines(keepends=True)} for c in cells]
    markdown = {"cell_type": "markdown", "source": ["import torch is only prose here\n"]}
    if nbformat == 3:
        for cell in code:
            cell["input"] = cell.pop("source")
        return json.dumps({"worksheets": [{"cells": [markdown, *code]}], "nbformat": 3}).encode()
    return json.dumps({"cells": [markdown, *code], "nbformat": 4}).encode()


def test_a_notebook_counts_its_code_cells_only(tmp_path: Path) -> None:
    (tmp_path / "submit_katakana.ipynb").write_bytes(
        notebook("import numpy as np\n%matplotlib inline\n")
    )
    assert frameworks_in_folder(tmp_path) == ()
    (tmp_path / "old.ipynb").write_bytes(notebook("import keras\n", nbformat=3))
    assert frameworks_in_folder(tmp_path) == ("keras",)


def test_a_zip_is_read_without_extracting_it_and_helpers_count(tmp_path: Path) -> None:
    path = tmp_path / "s.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("s/submit_katakana.ipynb", notebook("from net import Net\n"))
        archive.writestr("s/net.py", "import torch\nfrom torch import nn\n")
        archive.writestr("s/model.h5", b"\x89HDF")
    assert frameworks_in_zip(path) == ("torch",)


def test_an_unreadable_zip_records_nothing(tmp_path: Path) -> None:
    (tmp_path / "bad.zip").write_bytes(b"not a zip")
    assert frameworks_in_zip(tmp_path / "bad.zip") == ()


def test_numpy_only_needs_a_cpu_and_any_framework_a_gpu() -> None:
    assert worker_kind(()) == "cpu"
    assert worker_kind(["torch"]) == "gpu"
    assert worker_kind(["keras", "tensorflow"]) == "gpu"


def test_a_warm_container_preloads_only_what_the_submission_imports() -> None:
    assert preload_modules(()) == ("numpy", "IPython.core.interactiveshell")
    assert "torch" not in preload_modules(["keras"])
    assert preload_modules(["keras", "torch"])[-3:] == ("tensorflow", "keras", "torch")
