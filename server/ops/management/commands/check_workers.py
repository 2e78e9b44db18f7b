"""Send the diagnostic task to named queues and print which worker answered each.

``manage.py check_workers score-gpu0 score-gpu1 --testsets`` proves that each queue has a
consumer, that it is the intended worker (its KATAKANA_GPUS), and, with ``--testsets``,
that the worker's host holds byte-identical test sets.
"""

import json
import secrets
import sys
import time

from django.core.management.base import BaseCommand

from server.celery import app
from server.ops.broker import broker_redis
from server.ops.tasks import WHOAMI_TASK, reply_key


class Command(BaseCommand):
    help = "Ask the worker on each queue who it is (ops.whoami); exit 1 if one does not answer."

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("queues", nargs="+")
        parser.add_argument("--timeout", type=float, default=30.0)
        parser.add_argument("--testsets", action="store_true", help="also verify test sets")

    def handle(self, *args, queues, timeout, testsets, **options):  # type: ignore[no-untyped-def]
        client = broker_redis()
        pending = {}
        for queue in queues:
            reply_id = secrets.token_hex(8)
            pending[queue] = reply_id
            # expires: a message for a queue nobody consumes must not linger for ever.
            app.send_task(WHOAMI_TASK, args=[reply_id, testsets], queue=queue, expires=timeout)
        deadline = time.monotonic() + timeout
        answers = {}
        while pending and time.monotonic() < deadline:
            for queue, reply_id in list(pending.items()):
                raw = client.lpop(reply_key(reply_id))
                if raw:
                    answers[queue] = json.loads(raw)
                    del pending[queue]
            time.sleep(0.2)
        for queue in queues:
            answer = answers.get(queue)
            if answer is None:
                self.stdout.write(self.style.ERROR(f"{queue}: no answer in {timeout:g} s"))
            else:
                self.stdout.write(f"{queue}: {json.dumps(answer, ensure_ascii=False)}")
        bad_testsets = any(
            not check["ok"] for answer in answers.values() for check in answer.get("testsets", [])
        )
        if pending or bad_testsets:
            sys.exit(1)
