"""Validation, canonical storage and verified reloading of the hidden test set."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from scorer.errors import ErrorClass, ScoringError
from scorer.testset import (
    COURSE_CLASS_COUNTS,
    DATA_FILE,
    LABEL_FILE,
    TestSetInfo,
    load_verified,
    store_testset,
    validate_testset,
)

PER_CLASS = [3] * 5 + [2] * 10  # the course's 1300/800 shape, in miniature
N = sum(PER_CLASS)


def class_ids() -> np.ndarray:
    return np.repeat(np.arange(15), PER_CLASS)


def images(dtype: str = "float64") -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(N, 1, 28, 28)).astype(dtype)


def one_hot(dtype: str = "int32") -> np.ndarray:
    return np.eye(15, dtype=dtype)[class_ids()]


def save(tmp_path: Path, data: object, labels: object) -> tuple[Path, Path]:
    data_path, label_path = tmp_path / "data.npy", tmp_path / "labels.npy"
    np.save(data_path, data, allow_pickle=True)
    np.save(label_path, labels, allow_pickle=True)
    return data_path, label_path


def refused(tmp_path: Path, data: object, labels: object, **kwargs: object) -> ScoringError:
    with pytest.raises(ScoringError) as caught:
        validate_testset(*save(tmp_path, data, labels), **kwargs)  # type: ignore[arg-type]
    assert caught.value.error_class is ErrorClass.INFRASTRUCTURE
    return caught.value


def test_the_course_counts_add_up_to_14500() -> None:
    assert sum(COURSE_CLASS_COUNTS) == 14500
    assert COURSE_CLASS_COUNTS[:6] == (1300, 1300, 1300, 1300, 1300, 800)


def test_it_describes_a_valid_test_set(tmp_path: Path) -> None:
    data_path, label_path = save(tmp_path, images(), one_hot())
    info = validate_testset(data_path, label_path, expected_counts=PER_CLASS)
    assert info.n == N
    assert info.class_counts == tuple(PER_CLASS)
    assert info.sha256_data == hashlib.sha256(data_path.read_bytes()).hexdigest()
    assert info.sha256_labels == hashlib.sha256(label_path.read_bytes()).hexdigest()


def test_it_stores_the_canonical_form_and_reloads_it_verified(tmp_path: Path) -> None:
    source = images("uint8")
    info = store_testset(*save(tmp_path, source, class_ids()), tmp_path / "store")
    data = np.load(tmp_path / "store" / DATA_FILE, allow_pickle=False)
    labels = np.load(tmp_path / "store" / LABEL_FILE, allow_pickle=False)
    assert data.dtype == np.float64 and data.shape == (N, 1, 28, 28)
    assert np.array_equal(data, source.astype(np.float64))
    assert labels.dtype == np.int32 and np.array_equal(labels, one_hot())
    assert load_verified(tmp_path / "store") == info
    assert info == TestSetInfo(
        N,
        tuple(PER_CLASS),
        hashlib.sha256((tmp_path / "store" / DATA_FILE).read_bytes()).hexdigest(),
        hashlib.sha256((tmp_path / "store" / LABEL_FILE).read_bytes()).hexdigest(),
    )
    assert sorted(p.name for p in (tmp_path / "store").iterdir()) == [
        "SHA256SUMS",
        DATA_FILE,
        LABEL_FILE,
        "testset.json",
    ]


@pytest.mark.parametrize("dtype", ["float32", "uint8", "float64"])
def test_it_accepts_common_image_dtypes(tmp_path: Path, dtype: str) -> None:
    assert validate_testset(*save(tmp_path, images(dtype), one_hot())).n == N


def test_it_accepts_float_one_hot_labels(tmp_path: Path) -> None:
    info = validate_testset(*save(tmp_path, images(), one_hot("float64")))
    assert info.class_counts == tuple(PER_CLASS)


def test_it_checks_expected_class_counts(tmp_path: Path) -> None:
    error = refused(tmp_path, images(), one_hot(), expected_counts=list(COURSE_CLASS_COUNTS))
    assert error.code == "testset_class_counts"
    assert "1300" in error.render()


def test_it_rejects_images_of_the_wrong_shape(tmp_path: Path) -> None:
    error = refused(tmp_path, images().reshape(N, 28, 28), one_hot())
    assert error.code == "testset_data_shape"
    assert f"({N}, 28, 28)" in error.render()


def test_it_rejects_non_numeric_images(tmp_path: Path) -> None:
    error = refused(tmp_path, images().astype(np.complex128), one_hot())
    assert error.code == "testset_data_dtype"


def test_it_refuses_pickled_arrays(tmp_path: Path) -> None:
    error = refused(tmp_path, np.array([{"x": 1}] * N, dtype=object), one_hot())
    assert error.code == "testset_unreadable"
    assert "data.npy" in error.render()


def test_it_rejects_a_file_that_is_not_npy(tmp_path: Path) -> None:
    data_path, label_path = save(tmp_path, images(), one_hot())
    data_path.write_bytes(b"PK\x03\x04 not an array")
    with pytest.raises(ScoringError) as caught:
        validate_testset(data_path, label_path)
    assert caught.value.code == "testset_unreadable"


@pytest.mark.parametrize("bad", [np.nan, np.inf, 256.0, -1.0])
def test_it_rejects_values_outside_0_to_255(tmp_path: Path, bad: float) -> None:
    data = images()
    data[3, 0, 5, 5] = bad
    assert refused(tmp_path, data, one_hot()).code == "testset_data_range"


def test_it_rejects_images_already_normalised_to_0_1(tmp_path: Path) -> None:
    error = refused(tmp_path, images() / 255.0, one_hot())
    assert error.code == "testset_data_scale"


def test_it_rejects_a_label_row_that_is_not_one_hot(tmp_path: Path) -> None:
    labels = one_hot()
    labels[7, 9] = 1  # row 7 is class 2: now two ones
    error = refused(tmp_path, images(), labels)
    assert error.code == "testset_label_not_one_hot"
    assert error.params["row"] == 7


def test_it_rejects_labels_with_the_wrong_width(tmp_path: Path) -> None:
    error = refused(tmp_path, images(), one_hot()[:, :10])
    assert error.code == "testset_label_shape"


def test_it_rejects_class_ids_out_of_range(tmp_path: Path) -> None:
    ids = class_ids()
    ids[4] = 15
    error = refused(tmp_path, images(), ids)
    assert error.code == "testset_label_class"
    assert error.params["row"] == 4


def test_it_rejects_string_labels(tmp_path: Path) -> None:
    error = refused(tmp_path, images(), class_ids().astype(str))
    assert error.code == "testset_label_dtype"


def test_it_rejects_a_length_mismatch(tmp_path: Path) -> None:
    error = refused(tmp_path, images()[:-1], one_hot())
    assert error.code == "testset_length_mismatch"
    assert error.params == {"n_data": N - 1, "n_labels": N}


def test_it_rejects_an_empty_test_set(tmp_path: Path) -> None:
    error = refused(tmp_path, images()[:0], one_hot()[:0])
    assert error.code == "testset_empty"


def test_a_tampered_stored_file_fails_verification(tmp_path: Path) -> None:
    store = tmp_path / "store"
    store_testset(*save(tmp_path, images(), one_hot()), store)
    raw = bytearray((store / DATA_FILE).read_bytes())
    raw[-1] ^= 0xFF
    (store / DATA_FILE).write_bytes(bytes(raw))
    with pytest.raises(ScoringError) as caught:
        load_verified(store)
    assert caught.value.code == "testset_checksum_mismatch"
    assert DATA_FILE in caught.value.render()


def test_a_missing_stored_file_fails_verification(tmp_path: Path) -> None:
    store = tmp_path / "store"
    store_testset(*save(tmp_path, images(), one_hot()), store)
    (store / LABEL_FILE).unlink()
    with pytest.raises(ScoringError) as caught:
        load_verified(store)
    assert caught.value.code == "testset_missing"


def test_storing_an_invalid_set_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(ScoringError) as caught:
        store_testset(*save(tmp_path, images() / 255.0, one_hot()), tmp_path / "store")
    assert caught.value.code == "testset_data_scale"
    assert not (tmp_path / "store").exists()
