"""Account emails: the invitation sent to a learner imported from a class list.

Rendered in the recipient's language (Japanese unless they chose English), from
subject / text / HTML templates under ``templates/emails/invitation*``. Sent through
the email outbox (``server.submissions.emails``), so an invitation is never lost with a
task message. Password-reset emails are Django's, sent by ``forms.AccountPasswordResetForm``.
"""

from __future__ import annotations

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import translation
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from server.accounts.models import User
from server.accounts.tokens import invitation_token_generator
from server.courses.models import Course


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
    language = user.language or settings.LANGUAGE_CODE
    with translation.override(language):
        context = {
            "user": user,
            "course": course,
            "invited_by": invited_by,
            "link": invitation_link(user),
            "login_url": settings.SITE_URL + reverse("login"),
            "reset_url": settings.SITE_URL + reverse("password_reset"),
            "days": int(getattr(settings, "KATAKANA_INVITATION_DAYS", 14)),
        }
        subject = " ".join(render_to_string("emails/invitation_subject.txt", context).split())
        text = render_to_string("emails/invitation.txt", context)
        html = render_to_string("emails/invitation.html", context)
    message = EmailMultiAlternatives(
        subject,
        text,
        settings.DEFAULT_FROM_EMAIL,
        [user.email],
        headers={"Content-Language": language},
    )
    message.attach_alternative(html, "text/html")
    return message
