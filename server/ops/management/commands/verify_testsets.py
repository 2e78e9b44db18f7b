"""Check this host's copies of the active test sets against the checksums in the database.

Run on every worker host after copying test sets to it (docs/deploy.md); exit 1 on any
missing or different file, so a wrong copy can never score a submission unnoticed.
"""

import sys

from django.core.management.base import BaseCommand

from server.ops.services import verify_active_testsets


class Command(BaseCommand):
    help = "Verify the active test sets on this host by SHA-256 (TestSet.sha256_data/_labels)."

    def handle(self, *args, **options):  # type: ignore[no-untyped-def]
        checks = verify_active_testsets()
        for check in checks:
            line = f"{check.course} v{check.version} {check.directory}"
            if check.ok:
                self.stdout.write(self.style.SUCCESS(f"ok     {line}"))
            else:
                self.stdout.write(self.style.ERROR(f"BAD    {line}: {'; '.join(check.problems)}"))
        if not checks:
            self.stdout.write("No active test set.")
        if any(not check.ok for check in checks):
            sys.exit(1)
