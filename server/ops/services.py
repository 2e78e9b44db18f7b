"""Operator actions: rescore in bulk, purge old submission zips, verify test-set copies.

Each is called by a management command and is safe to run twice: a second rescore of a
submission still queued does nothing, a second purge finds nothing left to delete.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from scorer.testset import sha256_file
from server.courses.models import TestSet
from server.submissions.lifecycle import submission_rescore
from server.submissions.models import Status, Submission

PURGEABLE = (Status.SCORED, Status.FAILED, Status.ERROR, Status.REJECTED)


@dataclass
class RescoreReport:
    queued: list[int] = field(default_factory=list)
    skipped: dict[int, str] = field(default_factory=dict)


def rescore_submissions(submissions: Iterable[Submission]) -> RescoreReport:
    """Queue each terminal submission again on its course's active test set.

    ``submission_rescore`` never charges the quota again. Rejected uploads never ran and
    are not rescored; a submission whose zip was purged cannot be.
    """
    report = RescoreReport()
    for submission in submissions:
        if not submission.archive:
            report.skipped[submission.pk] = "its zip was purged"
        elif not submission.is_rescorable:
            report.skipped[submission.pk] = f"status is {submission.status}"
        elif submission_rescore(submission):
            report.queued.append(submission.pk)
        else:
            report.skipped[submission.pk] = "its status changed meanwhile"
    return report


@dataclass
class PurgeReport:
    cutoff: dt.datetime
    dry_run: bool
    submissions: int = 0
    bytes: int = 0


def purgeable_submissions(cutoff: dt.datetime) -> QuerySet[Submission]:
    return (
        Submission.objects.filter(created_at__lt=cutoff, status__in=PURGEABLE)
        .exclude(archive="")
        .order_by("pk")
    )


def purge_artefacts(*, older_than_days: int, dry_run: bool = False) -> PurgeReport:
    """Delete the stored zips of finished submissions older than the retention.

    The rows and their results stay; ``archive`` is emptied so that nothing (the admin,
    a rescore) points at a file that is gone. The file is deleted before the row is
    updated: a crash in between leaves a row whose file is already missing, and the next
    run finishes it (deleting a missing file is a no-op), never an orphan file.
    """
    if older_than_days < 1:
        raise ValueError("the retention must be at least one day")
    report = PurgeReport(
        cutoff=timezone.now() - dt.timedelta(days=older_than_days), dry_run=dry_run
    )
    for submission in purgeable_submissions(report.cutoff).iterator(chunk_size=500):
        storage = submission.archive.storage
        name = submission.archive.name
        report.submissions += 1
        report.bytes += storage.size(name) if storage.exists(name) else 0
        if dry_run:
            continue
        storage.delete(name)
        # Re-checks the status so a rescore that started meanwhile keeps its zip reference.
        Submission.objects.filter(pk=submission.pk, status__in=PURGEABLE).update(archive="")
    return report


@dataclass(frozen=True)
class TestSetCheck:
    course: str
    version: int
    directory: str
    ok: bool
    problems: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "course": self.course,
            "version": self.version,
            "directory": self.directory,
            "ok": self.ok,
            "problems": list(self.problems),
        }


def verify_testset(testset: TestSet) -> TestSetCheck:
    """Compare this host's copy of a test set with the checksums in the database."""
    problems = []
    for name, expected in (
        ("test_data.npy", testset.sha256_data),
        ("test_label.npy", testset.sha256_labels),
    ):
        path = Path(testset.directory) / name
        if not path.is_file():
            problems.append(f"{name} is missing")
        elif sha256_file(path) != expected:
            problems.append(f"{name} differs from the loaded test set (sha256 mismatch)")
    return TestSetCheck(
        course=testset.course.code,
        version=testset.version,
        directory=testset.directory,
        ok=not problems,
        problems=tuple(problems),
    )


def verify_active_testsets() -> list[TestSetCheck]:
    active = TestSet.objects.filter(is_active=True).select_related("course").order_by("pk")
    return [verify_testset(testset) for testset in active]
