"""A learner finds the guide from where they look: the course page, an error, an email."""

from __future__ import annotations

from django.urls import reverse

from server.outbox.models import EmailKind, OutboxEmail
from server.outbox.services import build_message
from tests.factories import make_submission


def test_the_course_page_opens_with_the_template_the_legacy_form_and_the_local_check(
    client, course, learner
):
    client.force_login(learner)
    page = client.get(reverse("course", args=[course.code])).content.decode()
    assert 'data-testid="first-steps"' in page
    assert f'href="{reverse("guide_kit_notebook")}" data-testid="template-link"' in page
    assert f'href="{reverse("guide_checker_kit")}" data-testid="checker-link"' in page
    assert 'href="/guide/#legacy"' in page
    assert 'data-testid="nav-guide"' in page


def test_a_failure_links_its_row_of_the_guide_on_the_page_and_in_the_email(client, course, learner):
    failed = make_submission(
        course, learner, status="failed", error_class="time_limit", error_code="time_limit"
    )
    client.force_login(learner)
    page = client.get(reverse("submission_detail", args=[failed.pk])).content.decode()
    assert 'href="/guide/#error-time_limit" data-testid="guide-link"' in page
    row = OutboxEmail.objects.create(
        submission=failed, generation=1, kind=EmailKind.FAILURE, to=learner.email
    )
    message = build_message(row)
    assert "/guide/#error-time_limit" in message.body
    assert "/guide/#error-time_limit" in str(message.alternatives[0][0])
