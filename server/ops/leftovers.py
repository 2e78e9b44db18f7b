"""Remove what a process killed with ``kill -9`` left on this host's disk, by age, safely.

A killed web process leaves Django's temporary upload file (``tmp*.upload*``, 75-150 MB
each) and the intake's scratch copies; a killed worker leaves its temporary copy of the
zip (``katakana-zip-*``); a storage write interrupted half-way (temp and storage on
different filesystems: a copy, not a rename) leaves a partial zip that no row refers to.
Nothing else ever deletes these. ``remove_leftovers`` does, run by the sweeper on the
beat worker's host and by ``manage.py remove_leftovers`` on any other host (the web).

Safe by construction: only names this project creates, only in its own directories or
the temp directory, only when nothing inside changed for ``KATAKANA_LEFTOVER_SECONDS``
(at least the hard task time limit plus a minute, so a live task's or upload's files are
never touched: they are written or renamed while in use), and a stored zip only when no
submission row refers to it. Symlinks are never followed.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path

from django.conf import settings

from server.ops.liveness import last_seen, mark
from server.submissions.models import Submission

log = logging.getLogger(__name__)

# What this project (and Django's upload handler) names its scratch space in the temp dir.
TEMP_PATTERNS = (
    "tmp*.upload*",  # django.core.files.uploadedfile.TemporaryUploadedFile
    "upload-*.zip",  # submissions.intake: the upload's copy before intake
    "intake-*",  # submissions.intake: the web host's extraction scratch
    "katakana-zip-*",  # submissions.scoring: the worker's copy of the zip
    "testset-upload-*",  # courses.views: a test-set upload being validated
)


@dataclass
class LeftoverReport:
    removed: list[str] = field(default_factory=list)
    bytes: int = 0


def remove_leftovers_now_and_then() -> int:
    """The sweeper's step: at most every quarter of the leftover age (a walk of the
    stored zips is cheap, not free), remembered in Redis through ``liveness``."""
    seen = last_seen("leftovers")
    if seen is not None and seen.age_seconds < leftover_age_seconds() / 4:
        return 0
    mark("leftovers")
    return len(remove_leftovers().removed)


def leftover_age_seconds() -> float:
    return max(settings.KATAKANA_LEFTOVER_SECONDS, settings.CELERY_TASK_TIME_LIMIT + 60)


def remove_leftovers(*, older_than_seconds: float | None = None) -> LeftoverReport:
    """Delete this host's leftovers older than ``older_than_seconds`` (the setting)."""
    age = leftover_age_seconds() if older_than_seconds is None else older_than_seconds
    report = LeftoverReport()
    cutoff = time.time() - age
    for directory in temp_dirs():
        for path in _matching(directory):
            if _newest_mtime(path) < cutoff:
                _remove(path, report)
    for path in orphan_archives(cutoff):
        _remove(path, report)
    if report.removed:
        log.info("removed %d leftover(s), %.1f MB", len(report.removed), report.bytes / 1e6)
    return report


def temp_dirs() -> list[Path]:
    dirs = {Path(tempfile.gettempdir())}
    if settings.FILE_UPLOAD_TEMP_DIR:
        dirs.add(Path(settings.FILE_UPLOAD_TEMP_DIR))
    return sorted(d for d in dirs if d.is_dir())


def orphan_archives(cutoff: float) -> Iterator[Path]:
    """Stored files under the submissions directory that no row refers to, untouched
    since ``cutoff`` (a save in progress has a fresh mtime; its row follows within it)."""
    root = Path(settings.KATAKANA_SUBMISSIONS_DIR)
    if not root.is_dir():
        return
    candidates = {}
    for dirpath, _dirnames, filenames in os.walk(root, followlinks=False):
        for name in filenames:
            path = Path(dirpath) / name
            try:
                info = path.lstat()
            except OSError:
                continue
            if info.st_mtime < cutoff:
                candidates[path.relative_to(root).as_posix()] = path
    if not candidates:
        return
    names, referenced = list(candidates), set[str]()
    for start in range(0, len(names), 1000):  # bounded IN lists
        batch = names[start : start + 1000]
        rows = Submission.objects.filter(archive__in=batch).values_list("archive", flat=True)
        referenced.update(str(name) for name in rows)
    for name, path in candidates.items():
        if name not in referenced:
            yield path


def _matching(directory: Path) -> Iterator[Path]:
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    for entry in entries:
        if any(fnmatch(entry.name, pattern) for pattern in TEMP_PATTERNS):
            yield Path(entry.path)


def _newest_mtime(path: Path) -> float:
    """The latest change anywhere in ``path`` (links not followed)."""
    try:
        newest = path.lstat().st_mtime
    except OSError:
        return time.time()  # vanished or unreadable: leave it
    if path.is_dir() and not path.is_symlink():
        for dirpath, dirnames, filenames in os.walk(path, followlinks=False):
            for name in dirnames + filenames:
                try:
                    newest = max(newest, (Path(dirpath) / name).lstat().st_mtime)
                except OSError:
                    continue
    return newest


def _remove(path: Path, report: LeftoverReport) -> None:
    size = _size(path)
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    except OSError:
        log.warning("could not remove leftover %s", path, exc_info=True)
        return
    report.removed.append(str(path))
    report.bytes += size


def _size(path: Path) -> int:
    if not path.is_dir() or path.is_symlink():
        try:
            return path.lstat().st_size
        except OSError:
            return 0
    total = 0
    for dirpath, _dirnames, filenames in os.walk(path, followlinks=False):
        for name in filenames:
            try:
                total += (Path(dirpath) / name).lstat().st_size
            except OSError:
                continue
    return total
