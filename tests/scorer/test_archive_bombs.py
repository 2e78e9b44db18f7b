"""bzip2 and LZMA zip bombs (issue 13, item 1): refused from the directory, and the
memory the intake spends on them is measured in a fresh process, not argued from code."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from scorer.archive import ArchiveLimits, extract_submission
from scorer.errors import ErrorClass, ScoringError

MB = 1 << 20
NOTEBOOK = b'{"cells": [], "nbformat": 4}'

# Peak RSS of a fresh interpreter extracting ``argv[1]``, over its peak after imports.
_MEASURE = """
import json, resource, sys
from pathlib import Path
from scorer.archive import extract_submission
from scorer.errors import ScoringError
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    extract_submission(Path(sys.argv[1]), Path(sys.argv[2]))
    code = None
except ScoringError as error:
    code = error.code
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"code": code, "grew_kib": after - before}))
"""


def bomb(path: Path, method: int, size: int) -> Path:
    """A zip whose one entry inflates to ``size`` zero bytes, streamed so that building
    it costs the test no memory."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("kadai/submit_katakana.ipynb", NOTEBOOK)
        info = zipfile.ZipInfo("kadai/weights.npy")
        info.compress_type = method
        with archive.open(info, "w", force_zip64=True) as member:
            chunk = bytes(4 * MB)
            for _ in range(size // len(chunk)):
                member.write(chunk)
    return path


@pytest.mark.parametrize(
    ("method", "name"), [(zipfile.ZIP_BZIP2, "bzip2"), (zipfile.ZIP_LZMA, "LZMA")]
)
def test_it_refuses_bzip2_and_lzma_entries_naming_the_method(
    tmp_path: Path, method: int, name: str
) -> None:
    zip_path = bomb(tmp_path / "s.zip", method, 8 * MB)
    with pytest.raises(ScoringError) as caught:
        extract_submission(zip_path, tmp_path / "out", ArchiveLimits())
    error = caught.value
    assert (error.error_class, error.code) == (
        ErrorClass.INVALID_ARCHIVE,
        "archive_unsupported_compression",
    )
    assert error.params == {"entry": "kadai/weights.npy", "method": name}
    assert "kadai/weights.npy is compressed with " + name in error.render()
    assert list((tmp_path / "out").iterdir()) == []


def test_a_tiny_bzip2_bomb_costs_the_intake_no_memory(tmp_path: Path) -> None:
    # 256 MB of zeros in a few hundred bytes: before the fix the first read of the entry
    # inflated all of it at once (RSS +256 MB) before any byte was counted.
    zip_path = bomb(tmp_path / "s.zip", zipfile.ZIP_BZIP2, 256 * MB)
    assert zip_path.stat().st_size < 2_000
    run = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(zip_path), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    measured = json.loads(run.stdout)
    assert measured["code"] == "archive_unsupported_compression"
    assert measured["grew_kib"] < 8 * 1024, measured


def test_a_deflate_bomb_is_inflated_only_as_far_as_the_budget(tmp_path: Path) -> None:
    # Deflate reads are bounded by the size asked for: the intake stops at the per-file
    # cap having held one chunk at a time.
    zip_path = bomb(tmp_path / "s.zip", zipfile.ZIP_DEFLATED, 256 * MB)
    run = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(zip_path), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    measured = json.loads(run.stdout)
    assert measured["code"] == "archive_compression_ratio"
    assert measured["grew_kib"] < 8 * 1024, measured
