"""Builders for web tests: submissions in any state with real metrics, and real zips.

Rows are written through the ORM rather than through a worker: the web pages read
stored states, and these tests are about the pages. Metrics come from the real
``scorer.metrics.compute_metrics`` so the charts see exactly what a worker stores.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import secrets
import zipfile
from typing import Any

import numpy as np

from scorer.metrics import compute_metrics
from server.submissions.models import Phase, Status, Submission

PREDICT_CELL = """\
import numpy as np


def predict(test_data):
    return np.zeros(len(test_data), dtype=np.int64)
"""


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
    **fields: Any,
) -> Submission:
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
    submission = Submission.objects.create(**defaults)
    if created_at is not None:
        # created_at is auto_now_add: set it afterwards to place a row in the past.
        Submission.objects.filter(pk=submission.pk).update(created_at=created_at)
        submission.refresh_from_db()
    return submission


def notebook_zip(cell: str = PREDICT_CELL, top: str = "submit_folder") -> bytes:
    """A small, valid verified-contract submission zip (notebook defining predict)."""
    notebook = {
        "cells": [
            {
                "cell_type": "code",
                "execution_count": None,
                "metadata": {},
                "outputs": [],
                "source": cell.splitlines(keepends=True),
            }
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 2,
    }
    buffer = io.BytesIO()
    # A fixed timestamp: two calls must give the same bytes (writestr with a bare name
    # stamps the current time, which differed when a test crossed a 2-second tick).
    info = zipfile.ZipInfo(f"{top}/submit_katakana.ipynb", (2024, 4, 1, 0, 0, 0))
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(info, json.dumps(notebook))
    return buffer.getvalue()
