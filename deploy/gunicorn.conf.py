"""gunicorn settings for the web container (deploy/Dockerfile.web), behind Caddy.

Threads rather than more processes: an upload request spends its time waiting on the
network and on the intake check, and 200 MB uploads over slow links must not hold every
worker. ``forwarded_allow_ips = "*"`` is safe only because the web port is never
published: Caddy is the one client, and its X-Forwarded-Proto makes Django see https.
"""

import os

bind = "0.0.0.0:8000"
worker_class = "gthread"
workers = int(os.environ.get("GUNICORN_WORKERS", "3"))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
# The intake check of a large upload (safe extraction + entry detection) can take a while.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "120"))
graceful_timeout = 30
keepalive = 5
# Recycle workers now and then: bounds any slow memory growth.
max_requests = 1000
max_requests_jitter = 100
forwarded_allow_ips = "*"
# Caddy writes the access log; gunicorn logs errors only.
accesslog = None
errorlog = "-"
loglevel = os.environ.get("KATAKANA_LOG_LEVEL", "INFO").lower()
# Heartbeat files on tmpfs-like storage, not the container's overlay layer.
worker_tmp_dir = "/dev/shm"
