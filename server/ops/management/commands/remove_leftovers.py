"""Delete what killed processes left on this host (temp uploads, zip copies, orphan zips)."""

from django.core.management.base import BaseCommand

from server.ops.leftovers import leftover_age_seconds, remove_leftovers


class Command(BaseCommand):
    help = (
        "Delete leftovers of killed web and worker processes on this host: temporary "
        "uploads and zip copies, and stored zips no submission refers to, untouched for "
        "KATAKANA_LEFTOVER_SECONDS. The sweeper runs it on the beat worker's host; run it "
        "from cron on the web host."
    )

    def handle(self, *args, **options):  # type: ignore[no-untyped-def]
        report = remove_leftovers()
        self.stdout.write(
            self.style.SUCCESS(
                f"Removed {len(report.removed)} leftover(s), {report.bytes / 1e6:.1f} MB, "
                f"untouched for {leftover_age_seconds():.0f} s."
            )
        )
        for path in report.removed:
            self.stdout.write(f"  {path}")
