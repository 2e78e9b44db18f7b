"""Training accuracy beside test accuracy, with a plain note when the gap suggests
overfitting (the threshold a course setting): page, email and API."""

from __future__ import annotations

from django.urls import reverse

from server.accounts.tokens import api_token_create
from server.outbox.models import EmailKind, OutboxEmail
from server.outbox.services import build_message
from tests.factories import make_submission, real_metrics


def _scored(course, learner, *, test: float, train: float | None):  # type: ignore[no-untyped-def]
    metrics = real_metrics(test)
    if train is not None:
        metrics["train_accuracy"] = train
    return make_submission(course, learner, accuracy=metrics["accuracy"], metrics=metrics)


def test_a_large_gap_shows_the_training_accuracy_and_the_overfitting_note(client, course, learner):
    submission = _scored(course, learner, test=0.9, train=0.999)
    client.force_login(learner)
    page = client.get(reverse("submission_detail", args=[submission.pk])).content.decode()
    assert 'data-testid="train-accuracy">0.9990<' in page
    assert 'data-testid="overfitting"' in page
    row = OutboxEmail.objects.create(
        submission=submission, generation=1, kind=EmailKind.RESULT, to=learner.email
    )
    body = build_message(row).body
    assert "0.9990" in body and ("overfitting" in body or "過学習" in body)


def test_a_small_gap_or_no_training_set_shows_no_note(client, course, learner):
    close = _scored(course, learner, test=0.97, train=0.98)
    none = _scored(course, learner, test=0.97, train=None)
    client.force_login(learner)
    page = client.get(reverse("submission_detail", args=[close.pk])).content.decode()
    assert 'data-testid="train-accuracy"' in page and 'data-testid="overfitting"' not in page
    page = client.get(reverse("submission_detail", args=[none.pk])).content.decode()
    assert 'data-testid="train-accuracy"' not in page


def test_the_gap_is_a_course_setting(client, course, learner):
    submission = _scored(course, learner, test=0.97, train=0.99)
    course.overfit_gap = 0.01
    course.save(update_fields=["overfit_gap"])
    client.force_login(learner)
    page = client.get(reverse("submission_detail", args=[submission.pk])).content.decode()
    assert 'data-testid="overfitting"' in page


def test_the_api_gives_both_accuracies_and_the_note(client, course, learner):
    submission = _scored(course, learner, test=0.9, train=0.999)
    token = api_token_create(user=learner, name="test")[1]
    response = client.get(
        reverse("api:submission", args=[submission.pk]), HTTP_AUTHORIZATION=f"Bearer {token}"
    )
    data = response.json()
    assert data["train_accuracy"] == 0.999 and data["overfitting"] is True
