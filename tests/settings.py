"""Test settings: the real PostgreSQL and Redis of the machine; email to memory."""

import os
import tempfile
import uuid
from pathlib import Path

# A database per test session (pytest-django creates test_<name> and drops it at the end),
# so parallel sessions on one PostgreSQL never drop each other's test database.
os.environ.setdefault(
    "DATABASE_URL", f"postgres://postgres@127.0.0.1:5432/katakana_{uuid.uuid4().hex[:8]}"
)
os.environ.setdefault("DJANGO_DEBUG", "true")
os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/14")
# Queues private to this test session: parallel sessions on one Redis never steal work.
_SESSION = uuid.uuid4().hex[:8]
os.environ.setdefault("KATAKANA_SCORE_QUEUE", f"test-score-{_SESSION}")
os.environ.setdefault("KATAKANA_DEFAULT_QUEUE", f"test-default-{_SESSION}")
# Rate-limit counters under a prefix of this session (the cache shares the test Redis).
os.environ.setdefault("KATAKANA_CACHE_URL", "redis://127.0.0.1:6379/14")
os.environ.setdefault("KATAKANA_CACHE_PREFIX", f"test-{_SESSION}")
os.environ.setdefault("KATAKANA_VAR_DIR", tempfile.mkdtemp(prefix="katakana-test-var-"))

from server.settings import *  # noqa: E402,F403

# A worker process started by a test writes mail to files the test reads back.
EMAIL_BACKEND = os.environ.get(
    "DJANGO_EMAIL_BACKEND", "django.core.mail.backends.locmem.EmailBackend"
)
EMAIL_FILE_PATH = Path(os.environ.get("KATAKANA_MAIL_DIR", str(VAR_DIR / "mail")))  # noqa: F405
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"  # noqa: F405
# WhiteNoise warns about a missing STATIC_ROOT on every request; tests serve from finders.
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # noqa: F405
