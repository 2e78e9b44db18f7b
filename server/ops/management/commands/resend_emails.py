"""Send again the emails the outbox gave up on (or is still backing off), once SMTP works.

manage.py resend_emails            # every unsent email, given-up ones included
manage.py resend_emails --dry-run  # only say how many, by kind
"""

from django.core.management.base import BaseCommand
from django.db.models import Count

from server.outbox.models import OutboxEmail
from server.outbox.services import outbox_retry


class Command(BaseCommand):
    help = "Queue every unsent email again with a fresh attempt budget (after an SMTP outage)."

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--dry-run", action="store_true", help="count, change nothing")

    def handle(self, *args, dry_run: bool, **options):  # type: ignore[no-untyped-def]
        unsent = OutboxEmail.objects.unsent()
        by_kind = dict(unsent.values_list("kind").annotate(n=Count("id")).order_by("kind"))
        summary = ", ".join(f"{kind} {n}" for kind, n in by_kind.items()) or "none"
        if dry_run:
            self.stdout.write(f"unsent emails: {summary}")
            return
        count = outbox_retry(unsent)
        self.stdout.write(f"queued {count} email(s) to be sent again ({summary})")
