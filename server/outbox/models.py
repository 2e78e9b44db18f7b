"""The email outbox: every email the site owes someone, one row each, sent at most once.

The kinds are listed here because the database checks each kind's subject; what each
kind says, and whether it is still wanted, is registered by the app that owes it
(``services.register``): the outbox imports neither submissions nor accounts.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class EmailKind(models.TextChoices):
    RESULT = "result", _("result")
    FAILURE = "failure", _("failure")
    INVITATION = "invitation", _("invitation")
    PASSWORD_RESET = "password_reset", _("password reset")
    # An existing account added to a course: told, never silently enrolled.
    ENROLMENT = "enrolment", _("added to a course")


class OutboxEmailQuerySet(models.QuerySet["OutboxEmail"]):
    def unsent(self) -> OutboxEmailQuerySet:
        """Owed and not sent: not yet accepted by the mail server, not skipped on purpose
        (the partial index ``outbox_email_unsent`` covers exactly these rows)."""
        return self.filter(sent_at__isnull=True, skipped=False)

    def still_tried(self) -> OutboxEmailQuerySet:
        """Unsent and under the attempt ceiling: the task or the sweeper will send them."""
        return self.unsent().filter(attempts__lt=settings.KATAKANA_EMAIL_MAX_ATTEMPTS)


class OutboxEmail(models.Model):
    """The email outbox: every email the site owes someone, one row each, sent at most once.

    Result and failure emails belong to a submission generation (one per terminal state);
    invitations belong to a recipient and a course, password-reset emails to a recipient.
    Rows are written in the transaction that creates the obligation, so a lost Celery
    message or a Redis restart can delay an email but never drop it: the sweeper re-sends
    what is still unsent.
    """

    submission = models.ForeignKey(
        "submissions.Submission",
        on_delete=models.CASCADE,
        related_name="emails",
        null=True,
        blank=True,
    )
    generation = models.PositiveIntegerField(null=True, blank=True)
    # Invitations (who is invited to which course, by whom) and password resets (who).
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="invitation_emails",
        null=True,
        blank=True,
    )
    course = models.ForeignKey(
        "courses.Course", on_delete=models.CASCADE, related_name="+", null=True, blank=True
    )
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        related_name="+",
        null=True,
        blank=True,
    )
    kind = models.CharField(max_length=16, choices=EmailKind.choices)
    # A rescore's email (generation > 1) says what changed: the accuracy the submission
    # had before this generation's outcome overwrote it (None: it had no score).
    previous_accuracy = models.FloatField(null=True, blank=True)
    to = models.EmailField()
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    claimed_until = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    skipped = models.BooleanField(
        default=False,
        help_text=_(
            "Not sent on purpose: the learner opted out of result emails, or an invited "
            "learner had already set a password."
        ),
    )

    objects = OutboxEmailQuerySet.as_manager()

    class Meta:
        # The table it had in the submissions app: the move was a change of code only.
        db_table = "submissions_outboxemail"
        constraints = [
            models.UniqueConstraint(
                fields=["submission", "generation"], name="one_email_per_generation"
            ),
            models.CheckConstraint(
                condition=(
                    models.Q(
                        kind__in=["invitation", "enrolment"],
                        submission__isnull=True,
                        recipient__isnull=False,
                        course__isnull=False,
                    )
                    | models.Q(
                        kind="password_reset",
                        submission__isnull=True,
                        recipient__isnull=False,
                    )
                    | models.Q(
                        ~models.Q(kind__in=["invitation", "enrolment", "password_reset"]),
                        submission__isnull=False,
                        generation__isnull=False,
                        recipient__isnull=True,
                    )
                ),
                name="outbox_email_has_one_subject",
            ),
        ]
        indexes = [
            # The unsent rows only: what the sweeper, /healthz and the instructors' banner
            # read, a handful among every email ever sent.
            models.Index(
                fields=["created_at"],
                condition=models.Q(sent_at__isnull=True, skipped=False),
                name="outbox_email_unsent",
            )
        ]

    @property
    def given_up(self) -> bool:
        """Unsent after KATAKANA_EMAIL_MAX_ATTEMPTS sends: only an operator sends it now."""
        return self.sent_at is None and self.attempts >= settings.KATAKANA_EMAIL_MAX_ATTEMPTS
