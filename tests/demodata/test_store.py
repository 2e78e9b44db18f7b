"""The committed demo data, loaded and materialised in the course's exact format."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import demodata
from demodata import store
from demodata.fonts import WRITERS, writers_for
from demodata.generate import LEGACY_TRAIN_CLASS_ORDER, LEGACY_TRAIN_FIRST_PASS

Split = tuple[np.ndarray, np.ndarray]
TEST_COUNTS = [1300] * 5 + [800] * 10


@pytest.fixture(scope="module")
def train() -> Split:
    return demodata.load("train")


@pytest.fixture(scope="module")
def test() -> Split:
    return demodata.load("test")


@pytest.fixture(scope="module")
def materialised(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return demodata.materialise(tmp_path_factory.mktemp("1_data"))


def test_train_split_has_the_course_shapes_and_dtypes(train: Split) -> None:
    data, labels = train
    assert data.shape == (3000, 1, 28, 28) and data.dtype == np.float64
    assert labels.shape == (3000, 15) and labels.dtype == np.int32


def test_test_split_has_the_course_shapes_and_dtypes(test: Split) -> None:
    data, labels = test
    assert data.shape == (14500, 1, 28, 28) and data.dtype == np.float64
    assert labels.shape == (14500, 15) and labels.dtype == np.int32


@pytest.mark.parametrize("split", ["train", "test"])
def test_pixels_are_whole_numbers_from_0_to_255_using_the_full_range(split: str) -> None:
    data, _ = demodata.load(split)
    assert np.array_equal(data, np.rint(data))
    assert data.min() == 0.0 and data.max() == 255.0


@pytest.mark.parametrize("split", ["train", "test"])
def test_every_image_is_dark_strokes_on_white_paper(split: str) -> None:
    data, _ = demodata.load(split)
    images = data[:, 0]
    # The corners are paper in every image; the strokes reach near-black in every image.
    corners = np.concatenate(
        [images[:, :3, :3], images[:, :3, -3:], images[:, -3:, :3], images[:, -3:, -3:]], axis=1
    ).reshape(len(images), -1)
    assert (np.median(corners, axis=1) >= 250).all()
    assert (np.median(images.reshape(len(images), -1), axis=1) >= 250).all()
    assert (images.reshape(len(images), -1).min(axis=1) <= 80).all()


@pytest.mark.parametrize("split", ["train", "test"])
def test_labels_are_one_hot(split: str) -> None:
    _, labels = demodata.load(split)
    assert set(np.unique(labels)) == {0, 1}
    assert (labels.sum(axis=1) == 1).all()


def test_train_has_200_per_class_in_the_courses_two_pass_block_order(train: Split) -> None:
    classes = train[1].argmax(axis=1)
    assert np.bincount(classes, minlength=15).tolist() == [200] * 15
    first = np.repeat(LEGACY_TRAIN_CLASS_ORDER, LEGACY_TRAIN_FIRST_PASS)
    second = np.repeat(LEGACY_TRAIN_CLASS_ORDER, 200 - LEGACY_TRAIN_FIRST_PASS)
    assert np.array_equal(classes, np.concatenate([first, second]))
    assert demodata.CLASSES[classes[0]] == "セ"


def test_test_set_is_ordered_by_class_with_the_course_counts(test: Split) -> None:
    classes = test[1].argmax(axis=1)
    assert np.array_equal(classes, np.repeat(np.arange(15), TEST_COUNTS))


def test_train_and_test_fonts_come_from_disjoint_families() -> None:
    meta = demodata.metadata()
    train_fonts = {f["file"] for f in meta["splits"]["train"]["fonts"]}
    test_fonts = {f["file"] for f in meta["splits"]["test"]["fonts"]}
    assert train_fonts and test_fonts and not train_fonts & test_fonts
    assert not set(meta["splits"]["train"]["families"]) & set(meta["splits"]["test"]["families"])
    # The record matches the catalogue the generator uses.
    assert train_fonts == {Path(w.path).name for w in writers_for("train")}
    assert test_fonts == {Path(w.path).name for w in writers_for("test")}
    assert len(train_fonts | test_fonts) == len(WRITERS)


def test_the_json_record_pins_the_committed_npz() -> None:
    meta = demodata.metadata()
    assert hashlib.sha256(store.NPZ_PATH.read_bytes()).hexdigest() == meta["npz_sha256"]
    assert list(meta["classes"]) == list("アイウエオカキクケコサシスセソ")


def test_materialise_writes_the_four_course_files_with_recorded_checksums(
    materialised: dict[str, Path],
) -> None:
    assert sorted(materialised) == sorted(["train_data", "train_label", "test_data", "test_label"])
    expected = store.expected_sha256()
    for stem, path in materialised.items():
        assert path.name == f"{stem}.npy"
        assert store.sha256_file(path) == expected[path.name]
    # The course's float64 files have exactly these sizes.
    assert materialised["train_data"].stat().st_size == 18_816_128
    assert materialised["test_data"].stat().st_size == 90_944_128


def test_materialised_files_load_without_pickle_and_equal_load(
    materialised: dict[str, Path], test: Split
) -> None:
    data = np.load(materialised["test_data"], allow_pickle=False)
    labels = np.load(materialised["test_label"], allow_pickle=False)
    assert np.array_equal(data, test[0]) and np.array_equal(labels, test[1])


def test_materialise_again_leaves_good_files_untouched(tmp_path: Path) -> None:
    first = demodata.materialise(tmp_path)
    stamps = {stem: path.stat().st_mtime_ns for stem, path in first.items()}
    inodes = {stem: path.stat().st_ino for stem, path in first.items()}
    second = demodata.materialise(tmp_path)
    assert second == first
    assert {stem: p.stat().st_mtime_ns for stem, p in second.items()} == stamps
    assert {stem: p.stat().st_ino for stem, p in second.items()} == inodes


def test_materialise_replaces_a_corrupted_file(tmp_path: Path) -> None:
    paths = demodata.materialise(tmp_path)
    good = paths["test_label"].read_bytes()
    paths["test_label"].write_bytes(good[:-10] + b"\x00" * 10)
    demodata.materialise(tmp_path)
    assert paths["test_label"].read_bytes() == good


def test_materialise_into_a_fresh_folder_is_quick(tmp_path: Path) -> None:
    start = time.monotonic()
    demodata.materialise(tmp_path / "new" / "1_data")
    assert time.monotonic() - start < 5.0


def test_load_rejects_an_unknown_split() -> None:
    with pytest.raises(ValueError, match="unknown split"):
        demodata.load("valid")


def test_loading_needs_neither_pillow_nor_the_generator() -> None:
    # Servers and sandboxes materialise the data without fonts; keep that import-light.
    code = (
        "import sys, demodata; demodata.load('train'); "
        "bad = {'PIL', 'demodata.generate', 'demodata.augment'} & set(sys.modules); "
        "sys.exit(f'imported {sorted(bad)}' if bad else 0)"
    )
    root = Path(demodata.__file__).resolve().parent.parent
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
