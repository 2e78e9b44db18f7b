"""Queue submissions for scoring again on the course's active test set; never charged."""

from django.core.management.base import BaseCommand, CommandError

from server.courses.models import Course
from server.ops.services import rescore_submissions
from server.submissions.models import Submission


class Command(BaseCommand):
    help = "Rescore one submission (by id) or every finished submission of a course (--all)."

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("submission_id", nargs="?", type=int)
        parser.add_argument("--course", help="course code, with --all")
        parser.add_argument(
            "--all", action="store_true", help="every scored, failed or errored submission"
        )
        parser.add_argument("--dry-run", action="store_true", help="only say what would be queued")

    def handle(self, *args, submission_id, course, all, dry_run, **options):  # type: ignore[no-untyped-def]
        if submission_id is not None and (course or all):
            raise CommandError("Give either a submission id or --course CODE --all, not both.")
        if submission_id is not None:
            submissions = Submission.objects.filter(pk=submission_id)
            if not submissions.exists():
                raise CommandError(f"No submission with id {submission_id}.")
        elif course and all:
            found = Course.objects.filter(code=course).first()
            if found is None:
                raise CommandError(f"No course with code {course!r}.")
            submissions = Submission.objects.filter(course=found).rescorable()
        else:
            raise CommandError("Give a submission id, or --course CODE --all.")
        submissions = submissions.select_related("course").order_by("pk")
        if dry_run:
            ids = [s.pk for s in submissions if s.is_rescorable]
            self.stdout.write(f"Would queue {len(ids)} submission(s): {_ids(ids)}")
            return
        report = rescore_submissions(submissions.iterator(chunk_size=500))
        for pk, reason in report.skipped.items():
            self.stderr.write(f"Skipped #{pk}: {reason}.")
        self.stdout.write(
            self.style.SUCCESS(f"Queued {len(report.queued)} submission(s): {_ids(report.queued)}")
        )
        if submission_id is not None and not report.queued:
            raise CommandError(f"Submission {submission_id} was not queued.")


def _ids(ids: list[int]) -> str:
    shown = ", ".join(f"#{pk}" for pk in ids[:20])
    return shown + (f" … and {len(ids) - 20} more" if len(ids) > 20 else "")
