"""The intake on the web host: the same archive check as the worker, bounded for a request.

Extraction (``scorer.archive``) is bounded by its own byte budget as it decompresses;
entry detection parses learner code with ``ast``, whose cost grows with the code, so it
runs in a child under memory and CPU limits (``scorer.bounded_entry``). No learner code
runs and no model is opened: the point is an immediate, specific, not-charged refusal of
a zip that cannot start, instead of a wasted daily slot.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from scorer.archive import ArchiveLimits, extract_submission
from scorer.bounded_entry import detect_entry_bounded


@dataclass(frozen=True)
class IntakeReport:
    entry: str
    contract: str


def archive_limits() -> ArchiveLimits:
    return ArchiveLimits(max_zip_bytes=settings.KATAKANA_MAX_UPLOAD_MB * 1024 * 1024)


def check_archive(path: Path) -> IntakeReport:
    """Extract ``path`` to a scratch folder and find its entry point, or raise ScoringError."""
    with tempfile.TemporaryDirectory(prefix="intake-") as tmp:
        extracted = extract_submission(path, Path(tmp) / "x", archive_limits())
        entry = detect_entry_bounded(
            extracted.root,
            memory_mb=settings.KATAKANA_INTAKE_MEMORY_MB,
            cpu_seconds=settings.KATAKANA_INTAKE_CPU_SECONDS,
        )
    return IntakeReport(entry=entry.path, contract=entry.contract)
