"""The walking skeleton, end to end on real parts.

A logged-in learner uploads a zip on the web form → the submission is saved and a
Celery task enqueued after commit (Redis) → a real worker process runs the zip in a
real Docker container → predictions come back as .npy → the score is computed outside
→ stored → shown on the learner's page → emailed. The accuracy is checked against an
independent computation here in the test.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

import demodata
from tests import learner_models as lm
from tests.workers import celery_worker, flush_broker, require_docker, wait_until

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture
def demo_course(transactional_db, settings_dirs, tmp_path):  # type: ignore[no-untyped-def]
    from server.courses.services import course_create, enrollment_create, testset_load

    files = demodata.materialise(tmp_path / "demo")
    course = course_create(name="デモ講座", code="dl_e2e_2026")
    testset_load(course=course, data_path=files["test_data"], label_path=files["test_label"])
    learner = enrollment_create(
        course=course, email="hanako@example.com", name="受講 花子", password="pw-hanako"
    ).user
    return course, learner


def test_an_upload_is_scored_in_docker_stored_shown_and_emailed(
    demo_course, client, settings, tmp_path
):  # type: ignore[no-untyped-def]
    require_docker()
    from server.outbox.models import OutboxEmail
    from server.submissions.models import Status, Submission

    course, learner = demo_course
    settings.KATAKANA_SANDBOX_BACKEND = "docker"
    x_train, t_train = demodata.load("train")
    params = lm.trained_params(x_train, t_train, hidden=32, epochs=8)
    folder = lm.build_verified_numpy(tmp_path / "mine", params, output="scores")
    zip_path = lm.zip_folder(folder, tmp_path / "dl_e2e_2026_submit_katakana_JUKO_HANAKO.zip")

    flush_broker()
    with celery_worker(tmp_path, env={"KATAKANA_SANDBOX_BACKEND": "docker"}):
        client.force_login(learner)
        upload = SimpleUploadedFile(zip_path.name, zip_path.read_bytes(), "application/zip")
        response = client.post(reverse("course", args=[course.code]), {"archive": upload})
        assert response.status_code == 302, response.content.decode()[:2000]
        submission = Submission.objects.get(learner=learner)
        assert response["Location"] == reverse("submission_detail", args=[submission.pk])

        def finished() -> bool:
            submission.refresh_from_db()
            return submission.is_terminal

        wait_until(finished, timeout=180, message="the submission to be scored")
        wait_until(
            lambda: OutboxEmail.objects.filter(
                submission=submission, sent_at__isnull=False
            ).exists(),
            timeout=60,
            message="the result email",
        )

    # Scored in a real container, outside of which the metrics were computed.
    assert submission.status == Status.SCORED, (submission.error_code, submission.detail)
    assert submission.backend == "docker"
    assert submission.image_digest.startswith("sha256:")
    assert submission.contract == "verified"
    assert submission.charged

    # Independent computation: the same network, run here, against the hidden labels.
    x_test, t_test = demodata.load("test")
    scores = lm.verified_numpy_forward(params, x_test)
    expected_accuracy = float(np.mean(np.argmax(scores, axis=1) == np.argmax(t_test, axis=1)))
    assert submission.accuracy == pytest.approx(expected_accuracy, abs=1e-12)
    shifted = scores - scores.max(axis=1, keepdims=True)
    probabilities = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    truth = np.argmax(t_test, axis=1)
    expected_loss = -np.sum(np.log(probabilities[np.arange(len(truth)), truth] + 1e-7)) / len(truth)
    assert submission.loss == round(expected_loss, 4)  # learner-chosen scores: kept as shown
    assert 0.3 < submission.accuracy < 1.0

    # Shown on the learner's page.
    page = client.get(reverse("submission_detail", args=[submission.pk])).content.decode()
    assert f"{submission.accuracy:.4f}" in page

    # Emailed exactly once, with the score.
    mails = list(Path(tmp_path / "mail").glob("*.log"))
    assert len(mails) == 1
    body = mails[0].read_text()
    assert "hanako@example.com" in body
    assert f"{submission.accuracy:.4f}" in body
    assert OutboxEmail.objects.filter(submission=submission).count() == 1
