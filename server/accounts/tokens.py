"""Personal API tokens and invitation links.

API tokens look like ``kt_<12 hex prefix>_<43 url-safe chars>``. The database keeps the
prefix (to find the row) and the SHA-256 of the whole token: a leaked database gives no
usable token, and SHA-256 is enough because the token carries 256 random bits (a slow
password hash would only cost time on every API call).

Invitation links reuse Django's password-reset machinery (``PasswordResetTokenGenerator``
and ``PasswordResetConfirmView``) with their own salt and a longer lifetime: a learner
may open the invitation days after the instructor imported the class list. Like a
reset link, it stops working once a password is set or the user logs in.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.tokens import PasswordResetTokenGenerator
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from django.utils.http import base36_to_int

from server.accounts.models import ApiToken, User

TOKEN_SCHEME = "kt"
PREFIX_BYTES = 6
SECRET_BYTES = 32
# last_used_at is informational: write it at most once a minute, not on every call.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def _hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def api_token_create(*, user: User, name: str) -> tuple[ApiToken, str]:
    """Create a token; returns the row and the raw token, which is never shown again."""
    prefix = secrets.token_hex(PREFIX_BYTES)
    raw = f"{TOKEN_SCHEME}_{prefix}_{secrets.token_urlsafe(SECRET_BYTES)}"
    token = ApiToken.objects.create(
        user=user, name=name.strip()[:100], prefix=prefix, hashed=_hash(raw)
    )
    return token, raw


def api_token_revoke(*, user: User, token_id: int) -> bool:
    """Revoke one of the user's own tokens; False when there is no such active token."""
    return bool(
        ApiToken.objects.filter(pk=token_id, user=user, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
    )


def api_token_authenticate(raw: str) -> User | None:
    """The active user owning this active token, or None."""
    scheme, _, rest = raw.partition("_")
    prefix, _, secret = rest.partition("_")
    if scheme != TOKEN_SCHEME or len(prefix) != 2 * PREFIX_BYTES or not secret:
        return None
    token = (
        ApiToken.objects.select_related("user")
        .filter(prefix=prefix, revoked_at__isnull=True)
        .first()
    )
    if token is None or not hmac.compare_digest(token.hashed, _hash(raw)):
        return None
    if not token.user.is_active:
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token.user


class InvitationTokenGenerator(PasswordResetTokenGenerator):
    """A password-reset token with its own salt and ``KATAKANA_INVITATION_DAYS`` lifetime."""

    key_salt = "server.accounts.tokens.InvitationTokenGenerator"

    @property
    def timeout_seconds(self) -> int:
        return settings.KATAKANA_INVITATION_DAYS * 24 * 3600

    def check_token(self, user: User | None, token: str | None) -> bool:
        # Django's check_token compares the age with PASSWORD_RESET_TIMEOUT (3 days);
        # the signature check is the same, only the age limit differs.
        if not (user and token):
            return False
        try:
            ts_b36, _sig = token.split("-")
            ts = base36_to_int(ts_b36)
        except ValueError:
            return False
        for secret in [self.secret, *self.secret_fallbacks]:
            if constant_time_compare(self._make_token_with_timestamp(user, ts, secret), token):
                break
        else:
            return False
        return (self._num_seconds(self._now()) - ts) <= self.timeout_seconds


invitation_token_generator = InvitationTokenGenerator()
