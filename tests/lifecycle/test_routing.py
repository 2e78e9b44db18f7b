"""Framework-aware routing with real workers: a CPU worker and a stand-in GPU worker.

numpy-only zips go to the CPU queue and only the CPU worker claims them; zips that
import a GPU framework go to the score queue and only the GPU worker claims them. The
stand-in is an ordinary worker configured as the GPU kind (this machine has no GPU); its
zips' ``net.py`` imports torch, which decides the route, but the notebook never imports
it, so the runs stay fast. Claims, not queues, enforce the kinds (messages are only
wake-up calls), so each worker also consumes the other's queue would change nothing;
here each consumes only its own, as deployed.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import redis
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.workers import celery_worker, wait_until

NOTEBOOK_PREDICT = (
    "import numpy as np\ndef predict(x):\n    return np.zeros(len(x), dtype=np.int64)\n"
)


def routed_zip(directory: Path, *, gpu: bool) -> SimpleUploadedFile:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"routed-{int(gpu)}.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("submit_folder/submission.py", NOTEBOOK_PREDICT)
        if gpu:
            archive.writestr("submit_folder/net.py", "import torch\nfrom torch import nn\n")
    return SimpleUploadedFile("submit.zip", path.read_bytes(), "application/zip")


def test_each_worker_scores_only_the_kind_it_serves(lifecycle, settings) -> None:  # type: ignore[no-untyped-def]
    from server.submissions.intake import submission_create
    from server.submissions.models import Status, Submission

    cpu_queue = f"{settings.KATAKANA_SCORE_QUEUE}-cpu"
    settings.KATAKANA_SCORE_QUEUE_CPU = cpu_queue
    default_queue = settings.CELERY_TASK_DEFAULT_QUEUE
    learners = [lifecycle.learner() for _ in range(8)]
    submitted = []
    for i, learner in enumerate(learners):
        upload = routed_zip(lifecycle.tmp / "zips", gpu=i % 2 == 1)
        submitted.append(submission_create(learner=learner, course=lifecycle.course, upload=upload))
    kinds = {s.pk: s.worker_kind for s in submitted}
    assert sorted(kinds.values()) == ["cpu"] * 4 + ["gpu"] * 4
    assert Submission.objects.get(pk=submitted[1].pk).frameworks == ["torch"]

    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    assert broker.llen(cpu_queue) == 4 and broker.llen(settings.KATAKANA_SCORE_QUEUE) == 4
    common = {"KATAKANA_SCORE_QUEUE_CPU": cpu_queue}
    try:
        with (
            celery_worker(
                lifecycle.tmp,
                name="cpu",
                queues=f"{cpu_queue},{default_queue}",
                env=lifecycle.env(KATAKANA_WORKER_KINDS="cpu", **common),
                beat=True,
            ),
            celery_worker(
                lifecycle.tmp,
                name="gpu",
                queues=settings.KATAKANA_SCORE_QUEUE,
                env=lifecycle.env(KATAKANA_WORKER_KINDS="gpu", **common),
            ),
        ):
            wait_until(lifecycle.all_terminal, timeout=90, message="all terminal")
    finally:
        broker.delete(cpu_queue)

    for submission in Submission.objects.filter(pk__in=kinds):
        assert submission.status == Status.SCORED, (submission.pk, submission.detail)
        worker_node = submission.worker.split("@")[0]
        assert worker_node == submission.worker_kind, (submission.pk, submission.worker)
