"""Upload to queued: the room checks, the intake check, the row and its enqueue.

``submission_create`` holds the rules of accepting an upload (quota under a row lock,
enqueue after commit) so no view repeats them. The intake check on the web host is the
same archive check as the worker's, bounded for a request.

Extraction (``scorer.archive``) is bounded by its own byte budget as it decompresses;
entry detection parses learner code with ``ast``, whose cost grows with the code, so it
runs in a child under memory and CPU limits (``scorer.bounded_entry``). No learner code
runs and no model is opened: the point is an immediate, specific, not-charged refusal of
a zip that cannot start, instead of a wasted daily slot.
"""

from __future__ import annotations

import hashlib
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from scorer.archive import ArchiveLimits, extract_submission
from scorer.bounded_entry import detect_entry_bounded
from scorer.errors import ScoringError
from scorer.frameworks import frameworks_in_zip, worker_kind
from scorer.pipeline import legacy_disabled_error
from server.accounts.models import User
from server.courses.models import Course, Enrollment, Role
from server.submissions.models import Phase, Status, Submission
from server.submissions.quota import quota_state
from server.submissions.routing import enqueue_on_commit


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


class SubmissionRejected(Exception):
    """The upload was refused before it was queued; nothing is charged."""

    def __init__(self, message: str, code: str, submission: Submission | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.submission = submission


def _sha256(upload: UploadedFile) -> str:
    digest = hashlib.sha256()
    for chunk in upload.chunks():
        digest.update(chunk)
    upload.seek(0)
    return digest.hexdigest()


def _spool(upload: UploadedFile) -> Path:
    with tempfile.NamedTemporaryFile(prefix="upload-", suffix=".zip", delete=False) as tmp:
        for chunk in upload.chunks():
            tmp.write(chunk)
    upload.seek(0)
    return Path(tmp.name)


def submission_create(*, learner: User, course: Course, upload: UploadedFile) -> Submission:
    """Accept an upload: room first, then the intake check, then quota again under a row
    lock, store, enqueue after commit.

    Raises ``SubmissionRejected``. The cheap refusals (quota, in-flight, storage) come
    before any intake work. A zip refused at intake keeps its row (name, size, SHA-256,
    the error; status REJECTED, not charged) but not its bytes: the learner still has
    the file, and storing refusals let one learner fill the disk at no quota cost
    (issue 13). A stored zip without a committed row is deleted again.
    """
    enrollment = Enrollment.objects.filter(user=learner, course=course).first()
    if enrollment is None or enrollment.role != Role.LEARNER:
        raise SubmissionRejected(
            _("You are not enrolled in this course as a learner."), "not_enrolled"
        )
    if not course.is_open():
        raise SubmissionRejected(_("This course is not accepting submissions now."), "closed")
    if course.active_testset is None:
        raise SubmissionRejected(
            _("The instructors have not loaded a test set yet. Please try again later."),
            "no_testset",
        )
    size = upload.size or 0
    _check_room(enrollment, size)

    spooled = _spool(upload)
    try:
        try:
            report = check_archive(spooled)
            intake_error: ScoringError | None = None
        except ScoringError as error:
            report, intake_error = None, error
        legacy_refused = report is not None and report.contract == "legacy"
        if intake_error is None and legacy_refused and not course.legacy_allowed:
            assert report is not None  # legacy_refused says so
            intake_error = legacy_disabled_error(report.entry)
        submission = Submission(
            token=secrets.token_hex(16),
            course=course,
            learner=learner,
            original_name=Path(upload.name or "submission.zip").name[:300],
            size_bytes=size,
            sha256=_sha256(upload),
        )
        if intake_error is not None:
            _mark_rejected(submission, intake_error)
            submission.save()
            raise SubmissionRejected(intake_error.render(_), intake_error.code, submission)
        stored = ""
        try:
            with transaction.atomic():
                # The row lock serialises this learner's uploads: count and insert atomically.
                Enrollment.objects.select_for_update().get(pk=enrollment.pk)
                _check_room(enrollment, size)
                submission.entry = report.entry if report else ""
                submission.contract = report.contract if report else ""
                submission.frameworks = list(frameworks_in_zip(spooled))
                submission.worker_kind = worker_kind(submission.frameworks)
                submission.testset = course.active_testset
                submission.archive.save("x.zip", upload, save=False)
                stored = submission.archive.name
                submission.save()
                enqueue_on_commit(submission)
        except BaseException:
            if stored:  # the row did not commit: neither may its zip stay
                submission.archive.storage.delete(stored)
            raise
        return submission
    finally:
        spooled.unlink(missing_ok=True)


def _check_room(enrollment: Enrollment, size: int) -> None:
    """Refuse an upload of ``size`` bytes that the learner has no room for: daily quota,
    runs in flight, stored bytes. Checked before the intake (no work for a refusal) and
    again under the enrollment's row lock (parallel uploads)."""
    course, learner = enrollment.course, enrollment.user
    state = quota_state(enrollment)
    if state.remaining <= 0:
        raise SubmissionRejected(
            _("You have used all %(limit)d submissions for today.") % {"limit": state.limit},
            "quota_exhausted",
        )
    in_flight = Submission.objects.in_flight().filter(course=course, learner=learner).count()
    if in_flight >= course.max_in_flight:
        raise SubmissionRejected(
            _("Please wait until your previous submission has been scored."), "in_flight"
        )
    limit = settings.KATAKANA_LEARNER_STORAGE_MB * 1024 * 1024
    if limit:
        stored = Submission.objects.filter(learner=learner).exclude(archive="")
        used = stored.aggregate(total=Sum("size_bytes"))["total"] or 0
        if used + size > limit:
            raise SubmissionRejected(
                _(
                    "Your stored submissions take %(used_mb)d MB, and this file would pass "
                    "the limit of %(limit_mb)d MB per learner. Ask your instructors to "
                    "remove old submissions."
                )
                % {"used_mb": used // (1024 * 1024), "limit_mb": limit // (1024 * 1024)},
                "storage_full",
            )


def _mark_rejected(submission: Submission, error: ScoringError) -> None:
    submission.status = Status.REJECTED
    submission.phase = Phase.DONE
    submission.charged = False
    submission.error_class = error.error_class.value
    submission.error_code = error.code
    submission.error_message = error.message
    submission.error_params = error.params
    submission.detail = error.detail
    submission.finished_at = timezone.now()
