"""The worker side of a submission's life: claim, heartbeat, record, refund, rescore.

Each function is one short transaction holding one rule: claims are conditional updates
(exactly one worker wins a row), results are conditional on the attempt (a late or
duplicate result changes nothing), infrastructure faults are retried with back-off and
never charged, and a terminal state writes its email into the outbox in the same
transaction. ``scoring`` (the worker), ``sweeper`` and the instructors' views call these.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from scorer.errors import ErrorClass, gettext_noop
from scorer.pipeline import ScoreOutcome
from server.submissions import emails, routing
from server.submissions.models import Phase, Status, Submission, SubmissionQuerySet

log = logging.getLogger(__name__)


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
        emails.outbox_create(fresh, previous_accuracy=previous_accuracy)
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
            routing.enqueue_on_commit(fresh, stamp=False, countdown=delay)
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
        emails.outbox_create(fresh)
        return Status.ERROR


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
            routing.enqueue_on_commit(submission)
    return bool(updated)


def copy_archive_to(submission: Submission, dest: Path) -> Path:
    with submission.archive.open("rb") as src, open(dest, "wb") as out:
        shutil.copyfileobj(src, out)
    return dest
