"""Django settings, read from the environment (see deploy/.env.example).

Defaults give the embedded demo: SQLite under ./var, Redis on localhost, the sandbox
backend named by KATAKANA_SANDBOX_BACKEND. Production sets DJANGO_DEBUG=false, which
makes DJANGO_SECRET_KEY and DJANGO_ALLOWED_HOSTS mandatory.
"""

from __future__ import annotations

from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

from server.env import env_bool, env_float, env_int, env_list, env_path, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = env_path("KATAKANA_VAR_DIR", BASE_DIR / "var")

DEBUG = env_bool("DJANGO_DEBUG", False)
if DEBUG:
    SECRET_KEY = env_str("DJANGO_SECRET_KEY", "dev-only-insecure-key-never-used-in-production")
else:
    SECRET_KEY = env_str("DJANGO_SECRET_KEY")
ALLOWED_HOSTS = env_list(
    "DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG else []
)
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])
SITE_URL = env_str("KATAKANA_SITE_URL", "http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "axes",
    "django_ratelimit",  # only for its system checks; the limits are in server/ratelimits.py
    "server.accounts",
    "server.courses",
    "server.submissions",
    "server.outbox",
    "server.api",
    "server.ops",
    "server.guide",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "server.accounts.middleware.UserLanguageMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes requires: it turns locked-out logins into a 429 page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "server.urls"
WSGI_APPLICATION = "server.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
                "server.ops.context.scoring_trouble",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.config(
        env="DATABASE_URL",
        default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}",
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The demo's embedded database serves parallel requests too. SQLite's default
    # deferred transactions take the write lock only at their first write and then fail
    # at once with "database is locked" (issue 13: 21 of 30 parallel uploads got a 500).
    # IMMEDIATE takes it at BEGIN, so writers queue for up to `timeout` seconds instead;
    # WAL lets pages be read meanwhile. The quota's row lock (select_for_update, a no-op
    # on SQLite) is then the whole database's write lock.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
KATAKANA_INVITATION_DAYS = env_int("KATAKANA_INVITATION_DAYS", 14)
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# Login rate limiting (django-axes): lock an email+IP pair after 5 failures for 15 minutes.
AXES_FAILURE_LIMIT = env_int("KATAKANA_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = 0.25
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
# The key under which the login form passes the email to authenticate(). Without it axes
# defaults to USERNAME_FIELD ("email"), records every failure under username None and
# never finds them when checking a login: the right password always got through.
AXES_USERNAME_FORM_FIELD = "username"
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "accounts/locked_out.html"

# The shared cache: Redis, so that every web process counts the same rate limits.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": env_str("KATAKANA_CACHE_URL", "redis://127.0.0.1:6379/1"),
        "KEY_PREFIX": env_str("KATAKANA_CACHE_PREFIX", "katakana"),
        "TIMEOUT": 300,
    }
}
# Rate limits (django-ratelimit counters; see server/ratelimits.py for why each exists).
# "N/s|m|h|d"; empty switches a limit off. A Redis outage fails open (logged).
KATAKANA_RATE_PASSWORD_RESET = env_str("KATAKANA_RATE_PASSWORD_RESET", "3/h")  # per address
KATAKANA_RATE_PASSWORD_RESET_IP = env_str("KATAKANA_RATE_PASSWORD_RESET_IP", "60/h")
KATAKANA_RATE_UPLOAD = env_str("KATAKANA_RATE_UPLOAD", "20/h")  # per learner, rejected too
KATAKANA_RATE_API = env_str("KATAKANA_RATE_API", "120/m")  # per token owner
# Failures per client address, across accounts and tokens (password spraying, token
# guessing). Generous: a class behind one NAT shares an address.
KATAKANA_RATE_LOGIN_FAILURES_IP = env_str("KATAKANA_RATE_LOGIN_FAILURES_IP", "30/h")
KATAKANA_RATE_API_TOKEN_FAILURES_IP = env_str("KATAKANA_RATE_API_TOKEN_FAILURES_IP", "20/m")
RATELIMIT_IP_META_KEY = "server.ratelimits.client_ip"
RATELIMIT_FAIL_OPEN = True
# W001: Django's own RedisCache is not on django-ratelimit's list, but it is shared and
# its incr is Redis's atomic INCRBY, which is all the counters need.
SILENCED_SYSTEM_CHECKS = ["django_ratelimit.W001"]

LANGUAGE_CODE = "ja"
LANGUAGES = [("ja", _("Japanese")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "Asia/Tokyo"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
# Uploaded zips and test sets live outside any web-served directory; no MEDIA_URL is routed.
MEDIA_ROOT = VAR_DIR / "media"
KATAKANA_SUBMISSIONS_DIR = env_path("KATAKANA_SUBMISSIONS_DIR", VAR_DIR / "submissions")
KATAKANA_TESTSETS_DIR = env_path("KATAKANA_TESTSETS_DIR", VAR_DIR / "testsets")
KATAKANA_RUNS_DIR = env_path("KATAKANA_RUNS_DIR", VAR_DIR / "runs")
# Stream uploads larger than 2.5 MB to disk rather than memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
KATAKANA_MAX_UPLOAD_MB = env_int("KATAKANA_MAX_UPLOAD_MB", 200)
# Stored zips per learner, all courses (0 = no cap): the daily quota bounds accepted
# uploads per day, this bounds what a learner keeps on disk over a course.
KATAKANA_LEARNER_STORAGE_MB = env_int("KATAKANA_LEARNER_STORAGE_MB", 2048)
# The web host parses learner code (entry detection) in a child with this much address
# space and CPU time (scorer/bounded_entry.py); past them the upload is refused.
KATAKANA_INTAKE_MEMORY_MB = env_int("KATAKANA_INTAKE_MEMORY_MB", 512)
KATAKANA_INTAKE_CPU_SECONDS = env_int("KATAKANA_INTAKE_CPU_SECONDS", 10)

# Sandbox
KATAKANA_SANDBOX_BACKEND = env_str("KATAKANA_SANDBOX_BACKEND", "docker")
KATAKANA_SANDBOX_IMAGE = env_str("KATAKANA_SANDBOX_IMAGE", "katakana-sandbox:cpu")
KATAKANA_GPUS = env_list("KATAKANA_GPUS", [])
# The trusted harness mounted read-only into every sandbox (a host path: the Docker
# daemon resolves it, so a containerised worker publishes it on a shared volume).
KATAKANA_HARNESS_DIR = env_path("KATAKANA_HARNESS_DIR", BASE_DIR / "sandbox" / "runner")
KATAKANA_SANDBOX_MEMORY_MB = env_int("KATAKANA_SANDBOX_MEMORY_MB", 4096)
KATAKANA_SANDBOX_CPUS = env_float("KATAKANA_SANDBOX_CPUS", 2.0)
KATAKANA_SANDBOX_PIDS = env_int("KATAKANA_SANDBOX_PIDS", 256)

# Email: the console backend for the demo, SMTP from the environment in production.
EMAIL_BACKEND = env_str(
    "DJANGO_EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend"
    if DEBUG
    else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 20)
EMAIL_FILE_PATH = VAR_DIR / "mail"
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "katakana-scoring@localhost")

# Celery. Each value is chosen against a failure named in docs/reliability.md (anchors-sandbox
# §3a). PostgreSQL holds the truth; a message is only a wake-up call ("there is work"),
# so losing or duplicating one never loses or duplicates a result (see
# server/submissions/lifecycle.py and routing.py).
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
CELERY_RESULT_BACKEND = None  # PostgreSQL holds every state; task results are not needed.
CELERY_TASK_IGNORE_RESULT = True
# JSON only: a pickled message injected into the broker would be code execution on workers.
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# Ack after the task ends, so a worker that dies mid-run gives its message back.
CELERY_TASK_ACKS_LATE = True
# A SIGKILLed/OOM-killed child is requeued too (Celery acks it otherwise, celery#1628). The
# loop this allows (celery#9082) is bounded twice: a redelivered message only claims QUEUED
# work, and a submission re-enters QUEUED only while attempts < KATAKANA_MAX_ATTEMPTS.
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# A task that raised or hit its hard time limit is acked, never redelivered forever; the
# submission itself is recovered by the sweeper from its expired lease.
CELERY_TASK_ACKS_ON_FAILURE_OR_TIMEOUT = True
# One message reserved at a time (with acks_late: the one running): nothing waits behind
# a long run on a busy worker while another worker idles, and no reserved message ages
# past the visibility timeout (celery#2788, #4537).
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# One run per worker; one worker per GPU (-c 1 on the command line says it again).
CELERY_WORKER_CONCURRENCY = 1
KATAKANA_WALL_SECONDS = env_int("KATAKANA_WALL_SECONDS", 600)
# Layered limits: sandbox wall limit < soft limit < hard limit < visibility timeout.
# The soft limit raises in the task (the sandbox is killed, the attempt is recorded as an
# infrastructure fault); the hard limit kills the pool child if even that hangs.
CELERY_TASK_SOFT_TIME_LIMIT = KATAKANA_WALL_SECONDS + 120
CELERY_TASK_TIME_LIMIT = KATAKANA_WALL_SECONDS + 180
# Redis redelivers an unacked message after this many seconds; below the hard limit, a
# long run would be handed to a second worker while still running (celery#5935).
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": KATAKANA_WALL_SECONDS + 900}
# Chosen: False. True would kill a 10-minute GPU run on every Redis blip. With False the
# run goes on and its late ack may fail, so the message can come back once more: harmless,
# it finds nothing to claim. Set explicitly (Celery 6 changes the default).
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
# SIGTERM is a warm shutdown (the run finishes; compose waits 15 min). A cold shutdown
# (SIGQUIT, or REMAP_SIGTERM=SIGQUIT) first gives running tasks this long, then puts the
# unacked message back in Redis at once instead of after the visibility timeout.
CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT = env_float("KATAKANA_SOFT_SHUTDOWN_SECONDS", 60.0)
CELERY_WORKER_ENABLE_SOFT_SHUTDOWN_ON_IDLE = True
# Keep retrying the broker at start-up and after a restart of Redis; the compose health
# check (celery inspect ping) restarts a worker that stops consuming (celery#8030).
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
# Memory creep of a long-lived child (docker SDK buffers, numpy) is bounded.
CELERY_WORKER_MAX_TASKS_PER_CHILD = 200
CELERY_WORKER_MAX_MEMORY_PER_CHILD = 1_000_000  # KiB
CELERY_TASK_DEFAULT_QUEUE = env_str("KATAKANA_DEFAULT_QUEUE", "default")
# Where scoring messages go: the shared queue every GPU worker of the deployment consumes
# (-Q score,score-gpu<N>): an idle GPU takes the next submission. The per-GPU queue is for
# operator commands aimed at one GPU; see docs/reliability.md.
KATAKANA_SCORE_QUEUE = env_str("KATAKANA_SCORE_QUEUE", "score")
# Framework-aware routing (scorer/frameworks.py, docs/capacity.md): a submission that
# imports no GPU framework (numpy only: most of the course) goes to the CPU queue, the
# others to KATAKANA_SCORE_QUEUE. Unset, the CPU queue *is* the score queue: one queue
# for everything, what a demo or a CPU-only host wants. A worker claims only submissions
# of the kinds it serves (cpu, gpu or both), so a CPU worker never takes a PyTorch run.
KATAKANA_SCORE_QUEUE_CPU = env_str("KATAKANA_SCORE_QUEUE_CPU", "") or KATAKANA_SCORE_QUEUE
KATAKANA_WORKER_KINDS = env_list("KATAKANA_WORKER_KINDS", ["cpu", "gpu"])
CELERY_TASK_ROUTES = {
    "submissions.score_submission": {"queue": KATAKANA_SCORE_QUEUE},
    "submissions.sweep": {"queue": CELERY_TASK_DEFAULT_QUEUE},
    "submissions.send_outbox_email": {"queue": CELERY_TASK_DEFAULT_QUEUE},
}
KATAKANA_SWEEP_SECONDS = env_float("KATAKANA_SWEEP_SECONDS", 30.0)
CELERY_BEAT_SCHEDULE = {
    "sweep": {
        "task": "submissions.sweep",
        "schedule": KATAKANA_SWEEP_SECONDS,
        # Sweeps that piled up while no worker was free collapse into one.
        "options": {"expires": KATAKANA_SWEEP_SECONDS},
    },
}
# Health (/healthz, /metrics, the banners): scoring counts as stalled once an upload has
# waited this long with no run in progress or finished meanwhile, or a lease expired this
# long ago without being reclaimed; the sweeper counts as down when it has not run for
# the second (beat or the "default" queue's worker is not running).
KATAKANA_SCORING_STALL_SECONDS = env_float("KATAKANA_SCORING_STALL_SECONDS", 300.0)
# Leftovers of killed processes (temporary uploads, zip copies, stored zips without a row)
# are deleted once nothing in them changed for this long (server/ops/leftovers.py); never
# less than the hard task time limit plus a minute.
KATAKANA_LEFTOVER_SECONDS = env_float("KATAKANA_LEFTOVER_SECONDS", 3600.0)
KATAKANA_SWEEPER_STALE_SECONDS = env_float(
    "KATAKANA_SWEEPER_STALE_SECONDS", max(120.0, 4 * KATAKANA_SWEEP_SECONDS)
)
# The database, not Celery, is the source of truth: infrastructure attempts are capped
# here (then the submission ends ERROR, refunded).
KATAKANA_MAX_ATTEMPTS = env_int("KATAKANA_MAX_ATTEMPTS", 3)
# Back-off before the next attempt after an infrastructure fault: this, then doubling.
KATAKANA_RETRY_SECONDS = env_float("KATAKANA_RETRY_SECONDS", 30.0)
# A running submission's lease, renewed by a heartbeat every third of it; expired = its
# worker is lost, and the sweeper requeues it. 30 s plus a 30 s sweep: a dead worker's
# sandbox is reaped within a minute (anchors-sandbox G4).
KATAKANA_LEASE_SECONDS = env_int("KATAKANA_LEASE_SECONDS", 30)
# A QUEUED submission this old with no message waiting in the queue gets a new message
# (the grace covers a publish that is still on its way after commit).
KATAKANA_REQUEUE_GRACE_SECONDS = env_float("KATAKANA_REQUEUE_GRACE_SECONDS", 60.0)
# Emails: retried with exponential back-off from this base, at most this many attempts in
# all (counted in OutboxEmail.attempts); base 10 s and 10 attempts cover ~50 min of SMTP
# outage. After that the row keeps its last error for the operator.
KATAKANA_EMAIL_RETRY_SECONDS = env_float("KATAKANA_EMAIL_RETRY_SECONDS", 10.0)
KATAKANA_EMAIL_MAX_ATTEMPTS = env_int("KATAKANA_EMAIL_MAX_ATTEMPTS", 10)
# Prefix of sandbox names ("katakana-sub-<id>-a<n>"): the reaper only touches its own.
KATAKANA_RUN_PREFIX = env_str("KATAKANA_RUN_PREFIX", "katakana")

# Structured logs for log shippers: KATAKANA_LOG_FORMAT=json (server/ops/logging.py).
KATAKANA_LOG_FORMAT = env_str("KATAKANA_LOG_FORMAT", "plain")
if KATAKANA_LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured("KATAKANA_LOG_FORMAT must be plain or json.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "server.ops.logging.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": KATAKANA_LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": env_str("KATAKANA_LOG_LEVEL", "INFO")},
}
# Workers keep Django's LOGGING (so JSON works there too) instead of Celery's own format.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# /metrics bearer token; empty = /metrics answers 404.
KATAKANA_METRICS_TOKEN = env_str("KATAKANA_METRICS_TOKEN", "")
# Behind Caddy, which replaces any client-sent X-Forwarded-For: django-axes must use it,
# or every learner shares the proxy's IP address for lockouts.
KATAKANA_BEHIND_PROXY = env_bool("KATAKANA_BEHIND_PROXY", False)
if KATAKANA_BEHIND_PROXY:
    AXES_IPWARE_META_PRECEDENCE_ORDER = ["HTTP_X_FORWARDED_FOR", "REMOTE_ADDR"]
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = not DEBUG
