"""Account forms: email login, profile settings, API tokens, class-list import, password reset."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.forms import AuthenticationForm, PasswordResetForm
from django.utils.translation import gettext_lazy as _

from server.accounts.emails import password_reset_outbox_create
from server.accounts.imports import MAX_CSV_BYTES
from server.accounts.models import Language, User


class EmailAuthenticationForm(AuthenticationForm):
    """Django's login form with the email lower-cased before authentication.

    django-axes counts failures per (username, IP) from the credentials passed to
    ``authenticate``; normalising here means "Taro@…" and "taro@…" share one counter
    instead of giving an attacker a fresh allowance per spelling.
    """

    def clean_username(self) -> str:
        return (self.cleaned_data.get("username") or "").strip().lower()


class ProfileForm(forms.ModelForm):
    class Meta:
        model = User
        fields = ["display_name", "language", "email_results"]
        labels = {
            "display_name": _("Display name"),
            "language": _("Language"),
            "email_results": _("Email me when a submission has been scored"),
        }
        help_texts = {
            "display_name": _("Shown to your instructors. Leave empty to use your email address."),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The model allows "not chosen yet"; a person saving the form chooses one.
        language = self.fields["language"]
        assert isinstance(language, forms.ChoiceField)
        language.required = True
        language.choices = Language.choices
        if not self.initial.get("language"):
            self.initial["language"] = self.instance.language_in_use


class ApiTokenForm(forms.Form):
    name = forms.CharField(
        label=_("Token name"),
        max_length=100,
        help_text=_("For example the machine or script that will use it."),
    )


class LearnerImportForm(forms.Form):
    csv_file = forms.FileField(
        label=_("Class list (CSV)"),
        help_text=_(
            "Columns: name, email, course code. UTF-8 or Shift_JIS (Excel); "
            "a header row is optional."
        ),
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,.txt,text/csv"}),
    )
    resend_invitations = forms.BooleanField(
        label=_("Send the invitation again to listed learners who have not set a password yet"),
        required=False,
    )

    def clean_csv_file(self) -> Any:
        upload = self.cleaned_data["csv_file"]
        if (upload.size or 0) > MAX_CSV_BYTES:
            raise forms.ValidationError(
                _("The file is larger than %(limit)d MB."),
                params={"limit": MAX_CSV_BYTES // (1024 * 1024)},
                code="too_large",
            )
        return upload


class AccountPasswordResetForm(PasswordResetForm):
    """Django's reset form, also for invited users who never set a password.

    Django skips users without a usable password (they may be managed elsewhere); here
    such a user is a learner who lost the invitation, and the reset email is exactly
    what they need. The email goes through the outbox, in the user's language, with
    SITE_URL links, not ones built from the request's Host header.
    """

    def get_users(self, email: str) -> Any:
        # Emails are stored lower-case: an exact match avoids Unicode case-folding surprises.
        return User.objects.filter(email=email.strip().lower(), is_active=True)

    def send_mail(
        self,
        subject_template_name: str,
        email_template_name: str,
        context: dict[str, Any],
        from_email: str | None,
        to_email: str,
        html_email_template_name: str | None = None,
    ) -> None:
        # Queued, not sent here: Django's own send_mail logs an SMTP failure and drops
        # the email. The outbox retries it, and renders it (with a fresh link) when sent.
        password_reset_outbox_create(user=context["user"])
