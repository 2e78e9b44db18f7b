"""Container health probe for the web service: GET /healthz?scope=live through gunicorn.

Sends the site's own host name (first of DJANGO_ALLOWED_HOSTS) so Django's host check
passes; exits 0 only on HTTP 200 (database and broker up), so Docker marks the container
unhealthy when either is down or gunicorn does not answer.
"""

import os
import sys
import urllib.error
import urllib.request

host = os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost").split(",")[0].strip() or "localhost"
request = urllib.request.Request(
    "http://127.0.0.1:8000/healthz?scope=live", headers={"Host": host.lstrip(".")}
)
try:
    with urllib.request.urlopen(request, timeout=10) as response:
        sys.exit(0 if response.status == 200 else 1)
except (urllib.error.URLError, OSError) as exc:
    print(f"unhealthy: {exc}", file=sys.stderr)
    sys.exit(1)
