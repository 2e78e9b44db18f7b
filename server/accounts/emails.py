"""Account emails: the invitation to a learner imported from a class list, the notice to
an existing account that an instructor added to a course, and the password-reset email.

Rendered in the recipient's language (``User.language_in_use``), from
subject / text / HTML templates under ``templates/emails/``, when the email is sent.
Both go through the email outbox (``server.submissions.emails``): a lost task message or
an SMTP outage delays them, never drops them.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.contrib.auth.tokens import default_token_generator
from django.core.mail import EmailMultiAlternatives
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from server.accounts.models import User
from server.accounts.tokens import invitation_token_generator
from server.courses.models import Course
from server.submissions.emails import render_email


def invitation_link(user: User) -> str:
    """Absolute set-password link for an invited user (valid until a password is set)."""
    path = reverse(
        "invitation_confirm",
        kwargs={
            "uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
            "token": invitation_token_generator.make_token(user),
        },
    )
    return settings.SITE_URL + path


def invitation_message(
    *, user: User, course: Course, invited_by: User | None
) -> EmailMultiAlternatives:
    return _message(
        "invitation",
        user,
        lambda: {
            "course": course,
            "invited_by": invited_by,
            "link": invitation_link(user),
            "login_url": settings.SITE_URL + reverse("login"),
            "reset_url": settings.SITE_URL + reverse("password_reset"),
            "days": settings.KATAKANA_INVITATION_DAYS,
        },
    )


def enrolment_message(
    *, user: User, course: Course, invited_by: User | None
) -> EmailMultiAlternatives:
    return _message(
        "enrolment",
        user,
        lambda: {
            "course": course,
            "invited_by": invited_by,
            "login_url": settings.SITE_URL + reverse("login"),
            "reset_url": settings.SITE_URL + reverse("password_reset"),
        },
    )


def password_reset_message(*, user: User) -> EmailMultiAlternatives:
    """Django's reset email (same templates, same token generator, same confirm view),
    with the link made now: an email held back by an SMTP outage still works when it
    arrives."""
    return _message(
        "password_reset",
        user,
        lambda: {
            "uid": urlsafe_base64_encode(force_bytes(user.pk)),
            "token": default_token_generator.make_token(user),
            "site_url": settings.SITE_URL,
            "email": user.email,
        },
    )


def _message(
    base: str, user: User, context: Callable[[], dict[str, object]]
) -> EmailMultiAlternatives:
    """``emails/<base>*`` in the user's language, to the user's current address."""
    language = user.language_in_use
    return render_email(
        base,
        language=language,
        to=user.email,
        context=lambda: {"user": user, **context()},
        headers={"Content-Language": language},
    )
