"""Archive intake against real, partly hostile zips built in the tests."""

from __future__ import annotations

import random
import stat
import zipfile
from pathlib import Path

import pytest

from scorer.archive import ArchiveLimits, Extracted, extract_submission
from scorer.errors import ErrorClass, ScoringError
from tests.scorer.zips import (
    FLAG_ENCRYPTED,
    RawEntry,
    make_zip,
    raw_zip,
    symlink_zip,
    zip_with_mode,
)

NOTEBOOK = b'{"cells": [], "nbformat": 4}'
MB = 1 << 20


def extract(zip_path: Path, tmp_path: Path, **limits: int | float) -> Extracted:
    return extract_submission(zip_path, tmp_path / "out", ArchiveLimits(**limits))


def rejection(zip_path: Path, tmp_path: Path, **limits: int | float) -> ScoringError:
    with pytest.raises(ScoringError) as caught:
        extract(zip_path, tmp_path, **limits)
    error = caught.value
    assert error.error_class is ErrorClass.INVALID_ARCHIVE
    # Nothing of a refused archive is left behind.
    assert list((tmp_path / "out").iterdir()) == []
    return error


def assert_names_entry(error: ScoringError, entry: str) -> None:
    assert error.params["entry"] == entry
    assert entry in error.render()


# --- what a normal submission looks like --------------------------------------------


def test_it_descends_into_the_single_top_level_folder(tmp_path: Path) -> None:
    zip_path = make_zip(
        tmp_path / "s.zip",
        {
            "kadai/": b"",
            "kadai/submit_katakana.ipynb": NOTEBOOK,
            "kadai/common/layers.py": b"x = 1\n",
            "kadai/katakana_model.pickle": b"\x80\x04N.",
        },
    )
    result = extract(zip_path, tmp_path)
    assert result.top_folder == "kadai"
    assert result.root == tmp_path / "out" / "kadai"
    assert result.files == ["common/layers.py", "katakana_model.pickle", "submit_katakana.ipynb"]
    assert (result.root / "common" / "layers.py").read_bytes() == b"x = 1\n"


def test_it_keeps_the_destination_as_root_when_files_sit_at_the_top(tmp_path: Path) -> None:
    zip_path = make_zip(tmp_path / "s.zip", {"submit_katakana.ipynb": NOTEBOOK, "m/w.npy": b"1"})
    result = extract(zip_path, tmp_path)
    assert result.top_folder is None
    assert result.root == tmp_path / "out"
    assert result.files == ["m/w.npy", "submit_katakana.ipynb"]


def test_a_single_top_level_file_is_not_a_folder(tmp_path: Path) -> None:
    result = extract(make_zip(tmp_path / "s.zip", {"submit_katakana.py": b"x"}), tmp_path)
    assert result.top_folder is None
    assert result.files == ["submit_katakana.py"]


def test_it_strips_junk_and_still_finds_the_single_folder(tmp_path: Path) -> None:
    zip_path = make_zip(
        tmp_path / "s.zip",
        {
            "sub/submit_katakana.ipynb": NOTEBOOK,
            "sub/.DS_Store": b"x",
            "sub/.ipynb_checkpoints/submit_katakana-checkpoint.ipynb": NOTEBOOK,
            "sub/common/__pycache__/layers.cpython-37.pyc": b"x",
            "sub/common/old.pyc": b"x",
            "sub/Thumbs.db": b"x",
            "__MACOSX/sub/._submit_katakana.ipynb": b"x",
        },
    )
    result = extract(zip_path, tmp_path)
    assert result.top_folder == "sub"
    assert result.files == ["submit_katakana.ipynb"]
    assert len(result.stripped) == 6
    assert "__MACOSX/sub/._submit_katakana.ipynb" in result.stripped
    assert not (tmp_path / "out" / "__MACOSX").exists()
    assert not (result.root / ".ipynb_checkpoints").exists()


def test_it_writes_files_0644_and_folders_0755(tmp_path: Path) -> None:
    zip_path = zip_with_mode(tmp_path / "s.zip", "a/run.sh", b"#!/bin/sh\n", stat.S_IFREG | 0o4777)
    result = extract(zip_path, tmp_path)
    assert stat.S_IMODE((result.root / "run.sh").stat().st_mode) == 0o644
    assert stat.S_IMODE(result.root.stat().st_mode) == 0o755


def test_it_refuses_a_destination_that_is_not_empty(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old").write_text("x")
    with pytest.raises(ValueError):
        extract(make_zip(tmp_path / "s.zip", {"a.py": b""}), tmp_path)


# --- names --------------------------------------------------------------------------


def test_it_decodes_cp932_names_from_windows_zips(tmp_path: Path) -> None:
    # ソ is 0x83 0x5C in cp932: its second byte is a backslash, which must not be
    # mistaken for a path separator.
    zip_path = raw_zip(
        tmp_path / "s.zip",
        [
            RawEntry("課題/".encode("cp932"), external_attr=0o40755 << 16),
            RawEntry("課題/ソ_モデル.pkl".encode("cp932"), b"weights"),
            RawEntry("課題/submit_katakana.ipynb".encode("cp932"), NOTEBOOK),
        ],
    )
    result = extract(zip_path, tmp_path)
    assert result.top_folder == "課題"
    assert result.files == ["submit_katakana.ipynb", "ソ_モデル.pkl"]
    assert (result.root / "ソ_モデル.pkl").read_bytes() == b"weights"


def test_it_decodes_unflagged_utf8_names_as_utf8(tmp_path: Path) -> None:
    zip_path = raw_zip(tmp_path / "s.zip", [RawEntry("モデル.pkl".encode(), b"w")])
    assert extract(zip_path, tmp_path).files == ["モデル.pkl"]


def test_it_normalises_macos_decomposed_names_to_nfc(tmp_path: Path) -> None:
    decomposed = "シ\u3099.pkl"  # ジ as macOS writes it
    zip_path = make_zip(tmp_path / "s.zip", {decomposed: b"w"})
    assert extract(zip_path, tmp_path).files == ["ジ.pkl"]


@pytest.mark.parametrize(
    ("name", "msgid_word"),
    [
        ("../../etc/cron.d/x", "'..'"),
        ("sub/../../escape.py", "'..'"),
        ("/etc/passwd", "absolute"),
        ("..\\..\\evil.py", "backslashes"),
        ("sub\\evil.py", "backslashes"),
        ("C:/Windows/evil.py", "drive letter"),
        ("c:evil.py", "drive letter"),
    ],
)
def test_it_rejects_a_zip_slip_entry(tmp_path: Path, name: str, msgid_word: str) -> None:
    error = rejection(make_zip(tmp_path / "s.zip", {name: b"x", "ok.py": b""}), tmp_path)
    assert error.code == "archive_unsafe_path"
    assert_names_entry(error, name)
    assert msgid_word in error.message


def test_it_rejects_control_characters_in_names(tmp_path: Path) -> None:
    zip_path = raw_zip(tmp_path / "s.zip", [RawEntry(b"evil\nname.py", b"x")])
    error = rejection(zip_path, tmp_path)
    assert error.code == "archive_unsafe_path"
    assert "evil\\nname.py" in error.render()


def test_it_rejects_a_name_longer_than_the_filesystem_allows(tmp_path: Path) -> None:
    name = "a" * 300 + ".py"
    error = rejection(make_zip(tmp_path / "s.zip", {name: b"x"}), tmp_path)
    assert error.code == "archive_unsafe_path"
    assert_names_entry(error, name)


def test_it_rejects_paths_nested_too_deep(tmp_path: Path) -> None:
    name = "/".join(["d"] * 6) + "/f.py"
    error = rejection(make_zip(tmp_path / "s.zip", {name: b"x"}), tmp_path, max_depth=5)
    assert error.code == "archive_too_deep"
    assert_names_entry(error, name)


def test_it_rejects_exact_duplicate_names(tmp_path: Path) -> None:
    zip_path = raw_zip(
        tmp_path / "s.zip", [RawEntry(b"sub/a.py", b"1"), RawEntry(b"sub/a.py", b"2")]
    )
    error = rejection(zip_path, tmp_path)
    assert error.code == "archive_duplicate_name"
    assert_names_entry(error, "sub/a.py")


def test_it_rejects_names_that_collide_after_normalisation(tmp_path: Path) -> None:
    zip_path = make_zip(tmp_path / "s.zip", {"ジ.pkl": b"1", "シ\u3099.pkl": b"2"})
    error = rejection(zip_path, tmp_path)
    assert error.code == "archive_duplicate_name"
    assert "ジ.pkl" in error.render()


def test_it_rejects_a_name_used_as_file_and_folder(tmp_path: Path) -> None:
    zip_path = make_zip(tmp_path / "s.zip", {"sub/model": b"1", "sub/model/w.npy": b"2"})
    error = rejection(zip_path, tmp_path)
    assert error.code == "archive_path_conflict"
    assert_names_entry(error, "sub/model/w.npy")


# --- entry kinds ------------------------------------------------------------------------


def test_it_rejects_a_symlink_entry(tmp_path: Path) -> None:
    zip_path = symlink_zip(tmp_path / "s.zip", "sub/labels.npy", "/work/1_data/test_label.npy")
    error = rejection(zip_path, tmp_path)
    assert error.code == "archive_link"
    assert_names_entry(error, "sub/labels.npy")


@pytest.mark.parametrize("kind", [stat.S_IFIFO, stat.S_IFCHR, stat.S_IFBLK, stat.S_IFSOCK])
def test_it_rejects_special_file_entries(tmp_path: Path, kind: int) -> None:
    zip_path = zip_with_mode(tmp_path / "s.zip", "sub/dev", b"", kind | 0o644)
    error = rejection(zip_path, tmp_path)
    assert error.code == "archive_special_file"
    assert_names_entry(error, "sub/dev")


def test_it_rejects_an_encrypted_entry(tmp_path: Path) -> None:
    zip_path = raw_zip(
        tmp_path / "s.zip",
        [RawEntry(b"ok.py", b"x"), RawEntry(b"secret.py", b"x" * 20, flags=FLAG_ENCRYPTED)],
    )
    error = rejection(zip_path, tmp_path)
    assert error.code == "archive_encrypted"
    assert_names_entry(error, "secret.py")


def test_it_rejects_an_unsupported_compression_method(tmp_path: Path) -> None:
    zip_path = raw_zip(tmp_path / "s.zip", [RawEntry(b"m.npy", b"x" * 50, method=9)])
    error = rejection(zip_path, tmp_path)
    assert error.code == "archive_unsupported_compression"
    assert_names_entry(error, "m.npy")


# --- sizes and bombs ------------------------------------------------------------------


def test_it_rejects_an_upload_over_the_compressed_size_cap(tmp_path: Path) -> None:
    noise = random.Random(0).randbytes(MB + 1024)
    zip_path = make_zip(tmp_path / "s.zip", {"w.npy": noise}, zipfile.ZIP_STORED)
    error = rejection(zip_path, tmp_path, max_zip_bytes=MB)
    assert error.code == "archive_too_large"


def test_it_stops_a_small_zip_of_zeros_at_the_per_file_cap(tmp_path: Path) -> None:
    zip_path = make_zip(tmp_path / "s.zip", {"sub/zeros.npy": bytes(10 * MB), "sub/a.py": b""})
    assert zip_path.stat().st_size < 20_000
    error = rejection(zip_path, tmp_path, max_file_bytes=MB)
    assert error.code == "archive_entry_too_large"
    assert_names_entry(error, "sub/zeros.npy")


def test_it_stops_at_the_total_cap_counting_written_bytes(tmp_path: Path) -> None:
    files = {f"sub/part{i}.bin": bytes([i]) * (400 * 1024) for i in range(4)}
    error = rejection(make_zip(tmp_path / "s.zip", files), tmp_path, max_total_bytes=MB)
    assert error.code == "archive_total_too_large"
    assert_names_entry(error, "sub/part2.bin")


def test_it_rejects_an_extreme_compression_ratio(tmp_path: Path) -> None:
    zip_path = make_zip(tmp_path / "s.zip", {"sub/zeros.npy": bytes(4 * MB)})
    error = rejection(zip_path, tmp_path, max_ratio=100)
    assert error.code == "archive_compression_ratio"
    assert_names_entry(error, "sub/zeros.npy")


def test_a_header_understating_the_size_never_yields_more_bytes(tmp_path: Path) -> None:
    # The header claims 100 bytes for 10 MB of zeros: the reader stops at the claim and
    # the CRC no longer matches, so the entry is refused as damaged.
    lying = RawEntry(b"sub/zeros.npy", bytes(10 * MB), method=zipfile.ZIP_DEFLATED, file_size=100)
    error = rejection(raw_zip(tmp_path / "s.zip", [lying]), tmp_path)
    assert error.code == "archive_corrupt"
    assert_names_entry(error, "sub/zeros.npy")


def test_a_header_overstating_the_size_is_refused_as_damaged(tmp_path: Path) -> None:
    # Counting never trusts the header: 50 MB claimed under a 1 MB cap is not refused as
    # too large (only 10 real bytes arrive), but as a header that does not match.
    lying = RawEntry(b"a.py", b"x = 1\n" * 2, method=zipfile.ZIP_DEFLATED, file_size=50 * MB)
    error = rejection(raw_zip(tmp_path / "s.zip", [lying]), tmp_path, max_file_bytes=MB)
    assert error.code == "archive_corrupt"
    assert_names_entry(error, "a.py")


def test_it_rejects_a_quoted_overlap_bomb(tmp_path: Path) -> None:
    entries = [RawEntry(b"a.bin"), RawEntry(b"b.bin", b"payload" * 100)]
    zip_path = raw_zip(tmp_path / "s.zip", entries, swallow_next=0)
    # Without an overlap check the stdlib happily reads both entries.
    with zipfile.ZipFile(zip_path) as zf:
        assert zf.read("b.bin") == b"payload" * 100
        assert zf.read("a.bin").endswith(b"payload")
    error = rejection(zip_path, tmp_path)
    assert error.code == "archive_overlapping_entries"
    assert_names_entry(error, "a.bin")


def test_it_rejects_entries_sharing_one_local_header(tmp_path: Path) -> None:
    # Fifield's non-quoted bomb: many central records, one small compressed kernel.
    entries = [
        RawEntry(b"k0", bytes(MB), method=zipfile.ZIP_DEFLATED),
        RawEntry(b"k1", bytes(MB), method=zipfile.ZIP_DEFLATED, header_of=0),
    ]
    error = rejection(raw_zip(tmp_path / "s.zip", entries), tmp_path)
    assert error.code == "archive_overlapping_entries"
    assert_names_entry(error, "k0")


def test_it_rejects_too_many_entries(tmp_path: Path) -> None:
    files = {f"sub/f{i}.py": b"" for i in range(30)}
    error = rejection(make_zip(tmp_path / "s.zip", files), tmp_path, max_entries=20)
    assert error.code == "archive_too_many_entries"
    assert error.params == {"count": 30, "limit": 20}


def test_it_counts_entries_itself_when_the_end_record_lies(tmp_path: Path) -> None:
    entries = [RawEntry(f"f{i}.py".encode()) for i in range(30)]
    zip_path = raw_zip(tmp_path / "s.zip", entries, declared_count=1)
    error = rejection(zip_path, tmp_path, max_entries=20)
    assert error.code == "archive_too_many_entries"
    assert error.params == {"count": 30, "limit": 20}


# --- not a usable zip ------------------------------------------------------------------


def test_it_rejects_a_tar_by_its_magic(tmp_path: Path) -> None:
    import tarfile

    (tmp_path / "a.py").write_text("x")
    with tarfile.open(tmp_path / "s.zip", "w") as tar:
        tar.add(tmp_path / "a.py", arcname="a.py")
    error = rejection(tmp_path / "s.zip", tmp_path)
    assert error.code == "archive_not_zip"
    assert "tar" in error.render()


@pytest.mark.parametrize(
    ("head", "kind"), [(b"Rar!\x1a\x07\x01\x00", "RAR"), (b"\x1f\x8b\x08", "gzip")]
)
def test_it_names_other_archive_formats(tmp_path: Path, head: bytes, kind: str) -> None:
    (tmp_path / "s.zip").write_bytes(head + bytes(100))
    error = rejection(tmp_path / "s.zip", tmp_path)
    assert error.code == "archive_not_zip"
    assert error.params["kind"] == kind


def test_it_rejects_an_empty_upload_as_not_a_zip(tmp_path: Path) -> None:
    (tmp_path / "s.zip").write_bytes(b"")
    assert rejection(tmp_path / "s.zip", tmp_path).code == "archive_not_zip"


def test_it_rejects_a_truncated_zip(tmp_path: Path) -> None:
    data = make_zip(tmp_path / "s.zip", {"a.py": b"x" * 1000}).read_bytes()
    (tmp_path / "s.zip").write_bytes(data[:-30])
    assert rejection(tmp_path / "s.zip", tmp_path).code == "archive_corrupt"


def test_it_rejects_a_crc_mismatch_naming_the_entry(tmp_path: Path) -> None:
    zip_path = raw_zip(tmp_path / "s.zip", [RawEntry(b"sub/a.py", b"x = 1\n", crc=1234)])
    error = rejection(zip_path, tmp_path)
    assert error.code == "archive_corrupt"
    assert_names_entry(error, "sub/a.py")


def test_a_zip_of_only_junk_is_empty(tmp_path: Path) -> None:
    zip_path = make_zip(
        tmp_path / "s.zip", {"__MACOSX/._x": b"x", "sub/.DS_Store": b"x", "sub/": b""}
    )
    assert rejection(zip_path, tmp_path).code == "archive_empty"


def test_a_zip_with_no_entries_is_empty(tmp_path: Path) -> None:
    assert rejection(make_zip(tmp_path / "s.zip", {}), tmp_path).code == "archive_empty"


def test_unsafe_paths_are_refused_even_inside_junk(tmp_path: Path) -> None:
    zip_path = make_zip(tmp_path / "s.zip", {"__MACOSX/../../x": b"x", "a.py": b""})
    assert rejection(zip_path, tmp_path).code == "archive_unsafe_path"
