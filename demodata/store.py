"""The committed compact form of the demo data set, and its expansion into the course format.

``katakana_demo.npz`` holds uint8 images (N, 28, 28) and uint8 class ids (N,) per split:
about a tenth of the size of the course's float64 arrays, and small enough to commit.
``katakana_demo.json`` next to it records the seed, which fonts went to which split, and the
sha256 of each materialised ``.npy`` file, so a materialised copy can be checked without
the generator. This module needs numpy only: no fonts, no Pillow.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

CLASSES = "アイウエオカキクケコサシスセソ"
N_CLASSES = len(CLASSES)
SPLITS = ("train", "test")
PACKAGE_DIR = Path(__file__).resolve().parent
NPZ_PATH = PACKAGE_DIR / "katakana_demo.npz"
META_PATH = PACKAGE_DIR / "katakana_demo.json"
# The course's file names, in the order they are written.
FILE_NAMES = ("train_data", "train_label", "test_data", "test_label")


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")


@lru_cache(maxsize=4)
def _compact(npz_path: Path) -> dict[str, np.ndarray]:
    with np.load(npz_path, allow_pickle=False) as npz:
        return {key: npz[key] for key in npz.files}


def load_compact(split: str, npz_path: Path = NPZ_PATH) -> tuple[np.ndarray, np.ndarray]:
    """The committed form of one split: uint8 images (N, 28, 28), uint8 class ids (N,)."""
    _check_split(split)
    arrays = _compact(npz_path)
    return arrays[f"{split}_images"], arrays[f"{split}_classes"]


def to_course_format(images: np.ndarray, classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N, 28, 28) + class ids -> float64 (N, 1, 28, 28) 0..255 + int32 one-hot (N, 15)."""
    data = images.astype(np.float64)[:, np.newaxis, :, :]
    labels = np.zeros((len(classes), N_CLASSES), dtype=np.int32)
    labels[np.arange(len(classes)), classes.astype(np.intp)] = 1
    return data, labels


def load(split: str) -> tuple[np.ndarray, np.ndarray]:
    """One split in the course's format: (float64 images (N,1,28,28), int32 one-hot (N,15)).

    ``split`` is "train" (3,000 images) or "test" (14,500, ordered by class).
    """
    return to_course_format(*load_compact(split))


def metadata(meta_path: Path = META_PATH) -> dict[str, Any]:
    """The recorded seed, font split and checksums (``katakana_demo.json``)."""
    result: dict[str, Any] = json.loads(meta_path.read_text(encoding="utf-8"))
    return result


def expected_sha256(meta_path: Path = META_PATH) -> dict[str, str]:
    """sha256 of each materialised file, keyed by file name (``train_data.npy``, ...)."""
    return dict(metadata(meta_path)["materialised_sha256"])


def npy_bytes(array: np.ndarray) -> bytes:
    """The exact bytes ``np.save`` writes for ``array`` (no pickle)."""
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def course_arrays(npz_path: Path = NPZ_PATH) -> dict[str, np.ndarray]:
    """All four course arrays keyed by file stem (``train_data``, ``train_label``, ...)."""
    arrays: dict[str, np.ndarray] = {}
    for split in SPLITS:
        data, labels = to_course_format(*load_compact(split, npz_path))
        arrays[f"{split}_data"] = data
        arrays[f"{split}_label"] = labels
    return arrays


def _write_atomically(path: Path, payload: bytes) -> None:
    # A reader (or a concurrent materialise) never sees a half-written file.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def materialise(dest: Path) -> dict[str, Path]:
    """Write the four course files into ``dest``; return their paths keyed by file stem.

    Keys are ``train_data``, ``train_label``, ``test_data``, ``test_label``; files are
    ``dest/<key>.npy``. A file already there with the recorded sha256 is left untouched, so
    calling this again is cheap. Every written file is checked against the recorded sha256.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    expected = expected_sha256()
    paths = {stem: dest / f"{stem}.npy" for stem in FILE_NAMES}
    stale = [
        stem
        for stem, path in paths.items()
        if not (path.is_file() and sha256_file(path) == expected[path.name])
    ]
    if stale:
        arrays = course_arrays()
        for stem in stale:
            payload = npy_bytes(arrays[stem])
            actual = hashlib.sha256(payload).hexdigest()
            if actual != expected[paths[stem].name]:
                raise RuntimeError(
                    f"{stem}.npy built from {NPZ_PATH.name} has sha256 {actual}, but "
                    f"{META_PATH.name} records {expected[paths[stem].name]}; regenerate "
                    "with `python -m demodata generate`"
                )
            _write_atomically(paths[stem], payload)
    return paths
