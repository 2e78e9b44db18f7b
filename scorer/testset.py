"""Check, store and reload the hidden test set an instructor uploads.

The sandbox serves the test set exactly as the course did: ``test_data.npy`` float64
(N, 1, 28, 28) with values 0-255, and ``test_label.npy`` int32 one-hot (N, 15). Uploads
are accepted in the forms instructors plausibly have at hand (float32 or uint8 images,
float one-hot or integer class-id labels) and stored in that canonical form, with
SHA-256 checksums that ``load_verified`` re-checks before every use. Files are read
with ``allow_pickle=False``: an uploaded ``.npy`` must never run code on the host.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from scorer.errors import ErrorClass, ScoringError, gettext_noop

N_CLASSES = 15
IMAGE_SHAPE = (1, 28, 28)
# The course's hidden set: 1,300 each of ア-オ, 800 each of カ-ソ, 14,500 in all.
COURSE_CLASS_COUNTS: tuple[int, ...] = (1300,) * 5 + (800,) * 10
DATA_FILE = "test_data.npy"
LABEL_FILE = "test_label.npy"
# The course's public training set, optionally stored beside the test set: learners see
# their model's accuracy on it next to the test accuracy (its labels stay on the host).
TRAIN_DATA_FILE = "train_data.npy"
TRAIN_LABEL_FILE = "train_label.npy"
CHECKSUM_FILE = "SHA256SUMS"
INFO_FILE = "testset.json"
_HASH_CHUNK = 1 << 20

MESSAGES: dict[str, str] = {
    "testset_unreadable": gettext_noop(
        "%(file)s cannot be read as a .npy array (object arrays and pickles are refused)."
    ),
    "testset_data_shape": gettext_noop(
        "%(file)s has shape %(shape)s; the images must have shape (N, 1, 28, 28)."
    ),
    "testset_data_dtype": gettext_noop(
        "%(file)s has dtype %(dtype)s; the images must be numbers (float64, float32 or uint8)."
    ),
    "testset_data_range": gettext_noop(
        "%(file)s has values outside 0-255 or not finite (minimum %(min)s, maximum %(max)s)."
    ),
    "testset_data_scale": gettext_noop(
        "%(file)s has values only between 0 and %(max)s: it looks normalised. Upload the "
        "raw 0-255 images the course distributes."
    ),
    "testset_label_shape": gettext_noop(
        "%(file)s has shape %(shape)s; the labels must be one-hot with shape (N, 15) "
        "or class ids with shape (N,)."
    ),
    "testset_label_dtype": gettext_noop(
        "%(file)s has dtype %(dtype)s; the labels must be integers (or 0/1 floats)."
    ),
    "testset_label_not_one_hot": gettext_noop(
        "%(file)s row %(row)s is not one-hot (exactly one 1, the rest 0)."
    ),
    "testset_label_class": gettext_noop("%(file)s row %(row)s has a class id outside 0-14."),
    "testset_length_mismatch": gettext_noop(
        "The images hold %(n_data)s rows but the labels hold %(n_labels)s."
    ),
    "testset_empty": gettext_noop("The test set holds no images."),
    "testset_class_counts": gettext_noop(
        "The test set has %(counts)s images per class; expected %(expected)s."
    ),
    "testset_checksum_mismatch": gettext_noop(
        "%(file)s no longer matches its stored checksum: the stored test set was changed "
        "or damaged. Upload it again."
    ),
    "testset_missing": gettext_noop("The stored test set is missing %(file)s."),
}


@dataclass(frozen=True)
class TestSetInfo:
    __test__ = False  # not a pytest test class despite the name

    n: int
    class_counts: tuple[int, ...]
    # Of the files as given to validate_testset, or of the canonical stored files.
    sha256_data: str
    sha256_labels: str


def _error(code: str, **params: Any) -> ScoringError:
    # A bad test set is the instructors' problem, never a learner's: infrastructure.
    return ScoringError(ErrorClass.INFRASTRUCTURE, code, MESSAGES[code], params)


def validate_testset(
    data_path: Path, label_path: Path, *, expected_counts: list[int] | None = None
) -> TestSetInfo:
    """Check an uploaded test set and describe it; raise ScoringError when unusable."""
    data, labels = _canonical(Path(data_path), Path(label_path), expected_counts)
    return TestSetInfo(
        n=len(data),
        class_counts=_class_counts(labels),
        sha256_data=sha256_file(Path(data_path)),
        sha256_labels=sha256_file(Path(label_path)),
    )


def store_testset(
    data_path: Path,
    label_path: Path,
    dest_dir: Path,
    *,
    expected_counts: list[int] | None = None,
) -> TestSetInfo:
    """Validate, then write the canonical test set and its checksums into ``dest_dir``.

    Each file is written to a temporary name and renamed, so a reader never sees half a
    test set; the checksum file is renamed last and so commits the set.
    """
    data, labels = _canonical(Path(data_path), Path(label_path), expected_counts)
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    sha_data = _write_npy(dest_dir / DATA_FILE, data)
    sha_labels = _write_npy(dest_dir / LABEL_FILE, labels)
    info = TestSetInfo(len(data), _class_counts(labels), sha_data, sha_labels)
    summary = {"n": info.n, "class_counts": list(info.class_counts)}
    _write_atomic(dest_dir / INFO_FILE, json.dumps(summary).encode())
    sums = f"{sha_data}  {DATA_FILE}\n{sha_labels}  {LABEL_FILE}\n"
    _write_atomic(dest_dir / CHECKSUM_FILE, sums.encode())
    return info


def store_training_set(data_path: Path, label_path: Path, dest_dir: Path) -> int:
    """Validate the public training set and store it beside a stored test set; its size.

    Same checks as a test set (images 0-255 in (N, 1, 28, 28), one-hot or class-id
    labels), any class counts. Written before the test set's checksum file is read, so a
    verified test set never depends on it; a missing training set only means no
    train-vs-test comparison.
    """
    data, labels = _canonical(Path(data_path), Path(label_path), None)
    dest_dir = Path(dest_dir)
    _write_npy(dest_dir / TRAIN_DATA_FILE, data)
    _write_npy(dest_dir / TRAIN_LABEL_FILE, labels)
    return len(data)


def load_verified(dest_dir: Path) -> TestSetInfo:
    """Re-hash a stored test set against its checksum file, then re-validate it."""
    dest_dir = Path(dest_dir)
    for name in (CHECKSUM_FILE, DATA_FILE, LABEL_FILE):
        if not (dest_dir / name).is_file():
            raise _error("testset_missing", file=name)
    expected = _read_checksums(dest_dir / CHECKSUM_FILE)
    actual = {}
    for name in (DATA_FILE, LABEL_FILE):
        actual[name] = sha256_file(dest_dir / name)
        if expected.get(name) != actual[name]:
            raise _error("testset_checksum_mismatch", file=name)
    # Checksums prove these are the bytes we wrote; check the form anyway, in case the
    # checksum file was rewritten along with them.
    for name, dtype in ((DATA_FILE, "<f8"), (LABEL_FILE, "<i4")):
        if _load(dest_dir / name).dtype != np.dtype(dtype):
            raise _error("testset_checksum_mismatch", file=name)
    data, labels = _canonical(dest_dir / DATA_FILE, dest_dir / LABEL_FILE, None)
    return TestSetInfo(len(data), _class_counts(labels), actual[DATA_FILE], actual[LABEL_FILE])


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# --- validation -------------------------------------------------------------------------


def _canonical(
    data_path: Path, label_path: Path, expected_counts: list[int] | None
) -> tuple[np.ndarray, np.ndarray]:
    """Return (float64 images, int32 one-hot labels) or raise the first problem found."""
    data = _images(_load(data_path), data_path.name)
    labels = _one_hot(_load(label_path), label_path.name)
    if len(data) != len(labels):
        raise _error("testset_length_mismatch", n_data=len(data), n_labels=len(labels))
    if len(data) == 0:
        raise _error("testset_empty")
    counts = _class_counts(labels)
    if expected_counts is not None and list(counts) != list(expected_counts):
        raise _error("testset_class_counts", counts=list(counts), expected=list(expected_counts))
    return data, labels


def _load(path: Path) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False, mmap_mode="r")
    except Exception as exc:  # np.load raises whatever its format sniffing hits
        raise _error("testset_unreadable", file=path.name) from exc
    if not isinstance(array, np.ndarray):  # an .npz archive
        array.close()
        raise _error("testset_unreadable", file=path.name)
    return array


def _images(array: np.ndarray, name: str) -> np.ndarray:
    if array.ndim != 4 or array.shape[1:] != IMAGE_SHAPE:
        raise _error("testset_data_shape", file=name, shape=str(tuple(array.shape)))
    if array.dtype.kind not in "fiu" or array.dtype.itemsize > 8:
        raise _error("testset_data_dtype", file=name, dtype=str(array.dtype))
    data = np.ascontiguousarray(array, dtype="<f8")
    if data.size:
        low, high = float(np.min(data)), float(np.max(data))
        if not (np.isfinite(low) and np.isfinite(high)) or low < 0 or high > 255:
            raise _error("testset_data_range", file=name, min=low, max=high)
        # Images scaled to 0-1 would silently break every learner's preprocessing.
        if high <= 1.0:
            raise _error("testset_data_scale", file=name, max=high)
    return data


def _one_hot(array: np.ndarray, name: str) -> np.ndarray:
    if array.dtype.kind not in "iubf":
        raise _error("testset_label_dtype", file=name, dtype=str(array.dtype))
    if array.ndim == 1:
        return _from_class_ids(array, name)
    if array.ndim != 2 or array.shape[1] != N_CLASSES:
        raise _error("testset_label_shape", file=name, shape=str(tuple(array.shape)))
    values = np.asarray(array)
    zero_or_one = (values == 0) | (values == 1)
    one_per_row = (values == 1).sum(axis=1) == 1
    bad = np.flatnonzero(~(zero_or_one.all(axis=1) & one_per_row))
    if bad.size:
        raise _error("testset_label_not_one_hot", file=name, row=int(bad[0]))
    return np.ascontiguousarray(values, dtype="<i4")


def _from_class_ids(array: np.ndarray, name: str) -> np.ndarray:
    ids = np.asarray(array)
    valid = (ids >= 0) & (ids < N_CLASSES) & (ids == np.floor(ids))
    bad = np.flatnonzero(~valid)
    if bad.size:
        raise _error("testset_label_class", file=name, row=int(bad[0]))
    return np.eye(N_CLASSES, dtype="<i4")[ids.astype(np.int64)]


def _class_counts(labels: np.ndarray) -> tuple[int, ...]:
    return tuple(int(c) for c in labels.sum(axis=0, dtype=np.int64))


# --- storage ----------------------------------------------------------------------------


def _write_npy(path: Path, array: np.ndarray) -> str:
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            np.save(handle, array, allow_pickle=False)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o644)  # read by the sandbox's unprivileged user
        digest = sha256_file(Path(temporary))
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return digest


def _write_atomic(path: Path, content: bytes) -> None:
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _read_checksums(path: Path) -> dict[str, str]:
    sums = {}
    for line in path.read_text(encoding="ascii", errors="replace").splitlines():
        digest, _, name = line.partition("  ")
        if name:
            sums[name.strip()] = digest.strip()
    return sums
