"""Users log in by email; their role in a course lives on ``courses.Enrollment``.

Roles: a learner or an instructor of a course (``Enrollment.role``); an admin is a user
with ``is_staff``. Personal API tokens are stored as a SHA-256 hash with a short public
prefix for lookup: the token itself is shown once and never stored.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.conf import settings
from django.contrib.auth.models import AbstractUser, BaseUserManager
from django.core.exceptions import PermissionDenied
from django.db import models
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def _create(self, email: str, password: str | None, **extra: Any) -> User:
        if not email:
            raise ValueError("An email address is required.")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra: Any) -> User:
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create(email, password, **extra)

    def get_by_natural_key(self, username: str | None) -> User:
        # Emails are stored lower-case; "Taro@Example.com" logs in as "taro@example.com".
        return self.get(email=(username or "").strip().lower())

    def create_superuser(self, email: str, password: str | None = None, **extra: Any) -> User:
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        return self._create(email, password, **extra)


class Language(models.TextChoices):
    # Endonyms on purpose: a learner who cannot read the current language finds their own.
    JA = "ja", "日本語"
    EN = "en", "English"


def shown_name(display_name: str, email: str) -> str:
    """What pages call a user (``User.name``): the display name, else the address's local part."""
    return display_name or email.split("@")[0]


class User(AbstractUser):
    username = None  # type: ignore[assignment]
    email = models.EmailField(_("email address"), unique=True)
    display_name = models.CharField(_("name"), max_length=150, blank=True)
    # Empty until chosen: the first signed-in visit stores the language the person was
    # reading (their switch, else their browser); the header switch changes it after that.
    language = models.CharField(
        _("language"), max_length=8, choices=Language.choices, blank=True, default=""
    )
    email_results = models.BooleanField(_("email me my results"), default=True)

    USERNAME_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    objects = UserManager()  # type: ignore[assignment,misc]  # our manager: no username

    def __str__(self) -> str:
        return self.display_name or self.email

    @property
    def name(self) -> str:
        return shown_name(self.display_name, self.email)

    @property
    def language_in_use(self) -> str:
        """Pages, emails and API answers for this user: their stored language, or the
        site's default before they have visited."""
        return self.language or settings.LANGUAGE_CODE


class ApiToken(models.Model):
    """A personal API token: ``kt_<prefix>_<secret>``; only its SHA-256 hash is stored.

    The prefix is public (shown in the token list, used to find the row); the hash is
    compared in constant time. A revoked token keeps its row so the list shows when it
    stopped working.
    """

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(_("name"), max_length=100)
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    hashed = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("API token")
        verbose_name_plural = _("API tokens")

    def __str__(self) -> str:
        return f"{self.name} (kt_{self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


def signed_in_user(request: HttpRequest) -> User:
    """The user of a request that ``login_required`` (or the API's token check) let in."""
    user = request.user
    if not isinstance(user, User):  # an anonymous request got past no decorator
        raise PermissionDenied
    return user
