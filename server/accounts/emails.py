"""Account emails: the invitation to a learner imported from a class list, the notice to
an existing account that an instructor added to a course, and the password-reset email.

Rendered in the recipient's language (``User.language_in_use``), from
subject / text / HTML templates under ``templates/emails/``, when the email is sent.
All go through the email outbox (``server.outbox``): a lost task message or an SMTP
outage delays them, never drops them. ``register_emails`` tells the outbox how each
kind is made and when it is no longer wanted.
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
from server.outbox.models import EmailKind, OutboxEmail
from server.outbox.services import recipient_email_create, register, render_email


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


def invitation_outbox_create(*, user: User, course: Course, invited_by: User | None) -> OutboxEmail:
    """The invitation owed to ``user`` for ``course``: a pending one is reused, not doubled."""
    return recipient_email_create(EmailKind.INVITATION, user, course=course, invited_by=invited_by)


def enrolment_outbox_create(*, user: User, course: Course, invited_by: User | None) -> OutboxEmail:
    """The notice owed to an existing account that was added to ``course``."""
    return recipient_email_create(EmailKind.ENROLMENT, user, course=course, invited_by=invited_by)


def password_reset_outbox_create(*, user: User) -> OutboxEmail:
    """The reset email owed to ``user``: a pending one is reused (its link is made when it
    is sent, so a send delayed by an SMTP outage still carries a fresh token)."""
    return recipient_email_create(EmailKind.PASSWORD_RESET, user)


def _invitation(email: OutboxEmail) -> EmailMultiAlternatives:
    assert email.recipient is not None and email.course is not None  # the database's check
    return invitation_message(
        user=email.recipient, course=email.course, invited_by=email.invited_by
    )


def _enrolment(email: OutboxEmail) -> EmailMultiAlternatives:
    assert email.recipient is not None and email.course is not None
    return enrolment_message(user=email.recipient, course=email.course, invited_by=email.invited_by)


def _password_reset(email: OutboxEmail) -> EmailMultiAlternatives:
    assert email.recipient is not None
    return password_reset_message(user=email.recipient)


def _still_invited(email: OutboxEmail) -> bool:
    """An invitation whose learner has meanwhile set a password, or was deactivated, is
    not sent."""
    user = email.recipient
    return user is not None and user.is_active and not user.has_usable_password()


def _active(email: OutboxEmail) -> bool:
    """No account email goes to a deactivated user."""
    return email.recipient is not None and email.recipient.is_active


def register_emails() -> None:
    """Tell the outbox how account emails are made (``AccountsConfig.ready``)."""
    register(EmailKind.INVITATION, build=_invitation, needed=_still_invited)
    register(EmailKind.ENROLMENT, build=_enrolment, needed=_active)
    register(EmailKind.PASSWORD_RESET, build=_password_reset, needed=_active)
