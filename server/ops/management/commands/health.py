"""Print the health report as JSON; exit 1 when the database or the broker is down.

Used by operators and by container health checks: ``manage.py health --skip-workers
--skip-gpus`` is the cheap form (no Celery broadcast, no nvidia-smi).
"""

import json
import sys

from django.core.management.base import BaseCommand

from server.ops.health import WORKER_PING_TIMEOUT_SECONDS, health_report


class Command(BaseCommand):
    help = "Check the database, the broker, the Celery workers and the GPUs; print JSON."

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--skip-workers", action="store_true", help="no Celery ping")
        parser.add_argument("--skip-gpus", action="store_true", help="no nvidia-smi")
        parser.add_argument(
            "--timeout",
            type=float,
            default=WORKER_PING_TIMEOUT_SECONDS,
            help="seconds to wait for worker replies",
        )

    def handle(self, *args, skip_workers: bool, skip_gpus: bool, timeout: float, **options):  # type: ignore[no-untyped-def]
        report = health_report(workers=not skip_workers, gpus=not skip_gpus, worker_timeout=timeout)
        self.stdout.write(json.dumps(report, indent=2, ensure_ascii=False))
        if not report["ok"]:
            sys.exit(1)
