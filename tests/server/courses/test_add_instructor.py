"""manage.py add_instructor: making an instructor no longer needs manage.py shell."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from server.accounts.models import User
from server.courses.models import Enrollment, Role
from server.outbox.models import EmailKind, OutboxEmail


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("add_instructor", *args, stdout=out)
    return out.getvalue()


def test_a_new_person_is_created_invited_and_can_open_the_leaderboard(
    client, course, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        said = run(course.code, "Sensei@Example.com", "--name", "先生")
    user = User.objects.get(email="sensei@example.com")
    assert Enrollment.objects.get(user=user, course=course).role == Role.INSTRUCTOR
    assert OutboxEmail.objects.filter(recipient=user, kind=EmailKind.INVITATION).count() == 1
    assert "invitation" in said and not user.is_staff
    client.force_login(user)
    assert client.get(reverse("leaderboard", args=[course.code])).status_code == 200


def test_a_learner_of_the_course_becomes_its_instructor_and_twice_is_harmless(
    course, learner, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        run(course.code, learner.email, "--staff")
        run(course.code, learner.email, "--staff")
    learner.refresh_from_db()
    assert Enrollment.objects.get(user=learner, course=course).role == Role.INSTRUCTOR
    assert learner.is_staff
    # The learner already has a password: no invitation.
    assert not OutboxEmail.objects.filter(recipient=learner).exists()


def test_an_unknown_course_or_a_bad_address_is_refused(course):
    with pytest.raises(CommandError, match="No course with code 'nope'"):
        run("nope", "a@example.com")
    with pytest.raises(CommandError, match="is not an email address"):
        run(course.code, "not-an-address")
