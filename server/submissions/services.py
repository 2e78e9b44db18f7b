"""Writes for submissions: accept an upload, claim and record a scoring run, rescore.

Views and tasks call these functions; they hold the business rules (quota under a row
lock, enqueue after commit, conditional claims) so that no view or task repeats them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
import shutil
import tempfile
from pathlib import Path

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import F, Q, Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from scorer.errors import ErrorClass, ScoringError, gettext_noop
from scorer.frameworks import frameworks_in_zip, worker_kind
from scorer.pipeline import ScoreOutcome, legacy_disabled_error
from server.accounts.models import User
from server.courses.models import Course, Enrollment, Role
from server.submissions import routing
from server.submissions.intake import archive_limits as archive_limits  # scoring.py
from server.submissions.intake import check_archive
from server.submissions.models import Phase, Status, Submission, SubmissionQuerySet
from server.submissions.quota import quota_state

log = logging.getLogger(__name__)


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
                _enqueue_on_commit(submission)
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


def _enqueue_on_commit(
    submission: Submission, *, stamp: bool = True, countdown: float = 0.0
) -> None:
    """Publish a scoring message once the surrounding transaction commits.

    The message is only a wake-up call: whichever worker takes it claims the fairest
    QUEUED submission (``submission_claim``), so a lost message strands nothing as long
    as the sweeper tops the queue up, and a duplicate finds nothing left to claim. The
    publish is ``robust``: Redis being down must not turn a committed upload into an
    error page; the sweeper publishes the missing message later. ``stamp`` sets
    ``enqueued_at`` (first enqueue, rescore); a retry keeps its place in the order.
    """
    if stamp:
        Submission.objects.filter(pk=submission.pk).update(enqueued_at=timezone.now())
    pk, kind = submission.pk, submission.worker_kind
    transaction.on_commit(
        lambda: publish_score_message(pk, kind=kind, countdown=countdown), robust=True
    )


def publish_score_message(hint_id: int, *, kind: str, countdown: float = 0.0) -> None:
    from server.submissions.tasks import score_next

    score_next.apply_async((hint_id,), queue=routing.queue_for(kind), countdown=countdown or None)


# ---------------------------------------------------------------------------
# Worker side


def _lease(seconds: float | None = None) -> dt.datetime:
    return timezone.now() + dt.timedelta(
        seconds=settings.KATAKANA_LEASE_SECONDS if seconds is None else seconds
    )


def retry_delay(attempts: int) -> float:
    """Back-off before infrastructure attempt ``attempts + 1``: an engine that is down
    for a minute must not burn every attempt of every queued submission in a second."""
    return float(min(settings.KATAKANA_RETRY_SECONDS * 2 ** max(attempts - 1, 0), 900))


def claimable_queued(now: dt.datetime) -> SubmissionQuerySet:
    """QUEUED submissions whose retry back-off (``lease_until`` on a QUEUED row) is over."""
    return Submission.objects.filter(status=Status.QUEUED).filter(
        Q(lease_until__isnull=True) | Q(lease_until__lte=now)
    )


def submission_claim(submission_id: int, *, worker: str) -> Submission | None:
    """Claim the fairest claimable QUEUED submission for this worker, or None.

    ``submission_id`` is the message's hint, preferred among equals. The order is fair
    across learners when a course lets a learner have several in flight: fresh uploads
    before rescores; then the learners with the fewest runs in progress; then the
    learner served longest ago (round robin: one learner's burst of ten takes turns
    with the others' uploads); then first enqueued. ``SKIP LOCKED`` lets concurrent
    workers claim different rows; the conditional UPDATE makes exactly one worker win
    each row. Only QUEUED rows are ever claimed: a RUNNING row whose lease expired goes
    back to QUEUED through the sweeper, the one place that counts attempts against
    KATAKANA_MAX_ATTEMPTS.
    """
    now = timezone.now()
    with transaction.atomic():
        pk = (
            claimable_queued(now)
            .filter(worker_kind__in=routing.kinds_served())
            .in_claim_order(hint=submission_id)
            .select_for_update(skip_locked=True, of=("self",))
            .values_list("pk", flat=True)
            .first()
        )
        if pk is None:
            return None
        won = Submission.objects.filter(pk=pk, status=Status.QUEUED).update(
            status=Status.RUNNING,
            phase=Phase.CHECKING,
            attempts=F("attempts") + 1,
            lease_until=_lease(),
            worker=worker[:200],
            started_at=now,
        )
    if not won:
        return None
    return Submission.objects.select_related("course", "testset", "learner").get(pk=pk)


def submission_heartbeat(submission: Submission, *, phase: str | None = None) -> bool:
    """Extend the lease; False when this attempt no longer owns the run."""
    fields: dict[str, object] = {"lease_until": _lease()}
    if phase:
        fields["phase"] = phase
    return bool(
        Submission.objects.filter(
            pk=submission.pk,
            status=Status.RUNNING,
            worker=submission.worker,
            attempts=submission.attempts,
        ).update(**fields)
    )


def _owned_for_update(submission: Submission) -> Submission | None:
    # Conditional on the attempt: a late result of an attempt the sweeper gave away, or a
    # duplicate delivery, finds no row and changes nothing.
    return (
        Submission.objects.select_for_update()
        .select_related("learner")
        .filter(pk=submission.pk, status=Status.RUNNING, attempts=submission.attempts)
        .first()
    )


RESULT_FIELDS = [
    "status", "phase", "finished_at", "lease_until", "contract", "entry", "accuracy", "loss",
    "metrics", "self_reported", "untrusted", "log_excerpt", "backend", "image_digest",
    "durations", "error_class", "error_code", "error_message", "error_params", "detail",
    "predicted", "model_files",
]  # fmt: skip


def submission_record_outcome(submission: Submission, outcome: ScoreOutcome) -> bool:
    """Store a terminal result in one short transaction; a late duplicate cannot overwrite.

    The outbox row is written in the same transaction: the email exists exactly when
    the result does (one per generation, unique in the database).
    """
    with transaction.atomic():
        fresh = _owned_for_update(submission)
        if fresh is None:
            log.warning("submission %s: outcome dropped, the run is no longer ours", submission.pk)
            return False
        # Kept for a rescore's email before the outcome overwrites it.
        previous_accuracy = fresh.accuracy
        fresh.status = Status.SCORED if outcome.status == "scored" else Status.FAILED
        fresh.phase = Phase.DONE
        fresh.finished_at = timezone.now()
        fresh.lease_until = None
        fresh.contract = outcome.contract or fresh.contract
        fresh.entry = outcome.entry or fresh.entry
        fresh.accuracy = outcome.accuracy
        fresh.loss = outcome.loss
        fresh.metrics = _stored_metrics(outcome)
        classes = outcome.predicted_classes
        fresh.predicted = None if classes is None else classes.astype("int8").tobytes()
        fresh.model_files = outcome.model_files
        fresh.self_reported = outcome.self_reported
        fresh.untrusted = outcome.untrusted
        fresh.log_excerpt = outcome.log_excerpt
        fresh.backend = outcome.backend
        fresh.image_digest = outcome.image_digest
        fresh.durations = outcome.durations
        error = outcome.error
        fresh.error_class = error.error_class.value if error else ""
        fresh.error_code = error.code if error else ""
        fresh.error_message = error.message if error else ""
        fresh.error_params = error.params if error else {}
        # One line each: the detail's last line and the first note used to run together.
        fresh.detail = "\n".join(
            line for line in [error.detail if error else "", *outcome.notes] if line
        )
        # A final verdict that is not the learner's fault (legacy_untraceable) refunds.
        fresh.charged = fresh.charged and (error is None or error.error_class.charged_to_learner)
        fresh.save(update_fields=[*RESULT_FIELDS, "charged"])
        _outbox_on_commit(fresh, previous_accuracy=previous_accuracy)
    return True


def _stored_metrics(outcome: ScoreOutcome) -> dict[str, object] | None:
    """The scorer's metrics, plus the training-set accuracy when the run measured it."""
    metrics: dict[str, object] = outcome.metrics.to_dict() if outcome.metrics else {}
    if outcome.train_accuracy is not None:
        metrics["train_accuracy"] = outcome.train_accuracy
        metrics["train_mistakes"] = outcome.train_mistakes
    return metrics or None


def submission_record_infrastructure_failure(submission: Submission, detail: str) -> Status:
    """An infrastructure fault: requeue after a back-off while attempts remain, else end
    as ERROR, refunded (charged=False). Returns the new status, or RUNNING when this
    attempt no longer owned the run (nothing changed)."""
    with transaction.atomic():
        fresh = _owned_for_update(submission)
        if fresh is None:
            return Status.RUNNING
        fresh.detail = detail[-4000:]
        if fresh.attempts < settings.KATAKANA_MAX_ATTEMPTS:
            delay = retry_delay(fresh.attempts)
            fresh.status = Status.QUEUED
            fresh.phase = Phase.QUEUED
            # On a QUEUED row the lease is the end of the back-off: not claimable before.
            fresh.lease_until = _lease(delay)
            fresh.save(update_fields=["status", "phase", "detail", "lease_until"])
            _enqueue_on_commit(fresh, stamp=False, countdown=delay)
            return Status.QUEUED
        fresh.status = Status.ERROR
        fresh.phase = Phase.DONE
        fresh.lease_until = None
        fresh.charged = False  # never charge the learner for our fault
        fresh.error_class = ErrorClass.INFRASTRUCTURE.value
        fresh.error_code = "infrastructure"
        fresh.error_message = gettext_noop(
            "The scoring server failed %(attempts)s times on this submission."
        )
        fresh.error_params = {"attempts": fresh.attempts}
        fresh.finished_at = timezone.now()
        fresh.save(
            update_fields=[
                "status", "phase", "detail", "lease_until", "charged", "error_class",
                "error_code", "error_message", "error_params", "finished_at",
            ]
        )  # fmt: skip
        _outbox_on_commit(fresh)
        return Status.ERROR


def _outbox_on_commit(submission: Submission, *, previous_accuracy: float | None = None) -> None:
    from server.submissions.emails import outbox_create

    outbox_create(submission, previous_accuracy=previous_accuracy)


def submission_rescore(submission: Submission) -> bool:
    """Queue a terminal submission again on the course's active test set; never charged again.

    A new generation: its own attempts, its own email. Rescores queue behind fresh
    uploads of the same fairness rank (``submission_claim``).
    """
    testset = submission.course.active_testset
    with transaction.atomic():
        updated = (
            Submission.objects.rescorable()
            .filter(pk=submission.pk)
            .update(
                status=Status.QUEUED,
                phase=Phase.QUEUED,
                attempts=0,
                generation=F("generation") + 1,
                testset=testset,
                lease_until=None,
            )
        )
        if updated:
            submission.refresh_from_db()
            _enqueue_on_commit(submission)
    return bool(updated)


def copy_archive_to(submission: Submission, dest: Path) -> Path:
    with submission.archive.open("rb") as src, open(dest, "wb") as out:
        shutil.copyfileobj(src, out)
    return dest
