"""Delete stored zips of finished submissions older than the retention; keep rows and results."""

from django.core.management.base import BaseCommand, CommandError

from server.ops.services import purge_artefacts


class Command(BaseCommand):
    help = "Delete the stored zips of submissions older than N days (results are kept)."

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--older-than-days", type=int, required=True, metavar="N")
        parser.add_argument("--dry-run", action="store_true", help="count, delete nothing")

    def handle(self, *args, older_than_days, dry_run, **options):  # type: ignore[no-untyped-def]
        try:
            report = purge_artefacts(older_than_days=older_than_days, dry_run=dry_run)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        verb = "Would delete" if dry_run else "Deleted"
        self.stdout.write(
            self.style.SUCCESS(
                f"{verb} {report.submissions} zip(s), {report.bytes / 1e6:.1f} MB, of submissions "
                f"made before {report.cutoff:%Y-%m-%d %H:%M %Z}."
            )
        )
