"""Test data builders shared by every test module: submission rows in any state.

Rows are written through the ORM rather than through a worker: the pages, the API and
the ops commands read stored states. Metrics come from the real
``scorer.metrics.compute_metrics`` so charts and emails see exactly what a worker stores.
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

import numpy as np
from django.core.files.base import ContentFile

from scorer.metrics import compute_metrics
from server.submissions.models import Phase, Status, Submission

EMPTY_ZIP = b"PK\x05\x06" + b"\x00" * 18  # a valid, empty zip: nothing here opens it


def real_metrics(accuracy: float, *, per_class: int = 10, seed: int = 0) -> dict[str, Any]:
    """Metrics of predictions that are right about ``accuracy`` of the time, as stored."""
    rng = np.random.default_rng(seed)
    true = np.repeat(np.arange(15), per_class)
    wrong = rng.random(len(true)) > accuracy
    predicted = np.where(wrong, (true + rng.integers(1, 15, len(true))) % 15, true)
    labels = np.eye(15, dtype=np.int32)[true]
    return compute_metrics(predicted, labels).to_dict()


def make_submission(
    course: Any,
    learner: Any,
    *,
    status: str = Status.SCORED,
    accuracy: float | None = None,
    created_at: dt.datetime | None = None,
    with_metrics: bool = False,
    with_zip: bool = False,
    **fields: Any,
) -> Submission:
    """A submission row in any state, written through the ORM.

    ``with_zip`` stores a real (empty) zip in the submission storage, for code that
    opens, sizes or purges it; otherwise ``archive`` is only a name.
    """
    terminal = status in (Status.SCORED, Status.FAILED, Status.ERROR, Status.REJECTED)
    defaults: dict[str, Any] = {
        "token": secrets.token_hex(16),
        "course": course,
        "learner": learner,
        "archive": f"{course.code}/test.zip",
        "original_name": "submit_folder.zip",
        "size_bytes": 1234,
        "sha256": "0" * 64,
        "status": status,
        "phase": Phase.DONE if terminal else Phase.QUEUED,
        "testset": course.active_testset,
        "charged": status not in (Status.ERROR, Status.REJECTED),
    }
    if status == Status.SCORED:
        accuracy = 0.9 if accuracy is None else accuracy
        metrics = real_metrics(accuracy) if with_metrics else None
        defaults.update(accuracy=metrics["accuracy"] if metrics else accuracy, metrics=metrics)
    defaults.update(fields)
    submission = Submission(**defaults)
    if with_zip and "archive" not in fields:
        submission.archive.save("x.zip", ContentFile(EMPTY_ZIP), save=False)
        submission.size_bytes = len(EMPTY_ZIP)
    submission.save()
    if created_at is not None:
        # created_at is auto_now_add: set it afterwards to place a row in the past.
        Submission.objects.filter(pk=submission.pk).update(created_at=created_at)
        submission.refresh_from_db()
    return submission
