"""manage.py import_learners COURSE_CODE FILE.csv: the class-list import from the shell.

Same service as the instructors' page; invitations go out through Celery after the
import commits (a worker must run). Exits non-zero when any line had an error, after
importing the good lines, so a script notices.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from server.accounts.imports import ImportFileError, learners_import
from server.accounts.models import User
from server.courses.models import Course


class Command(BaseCommand):
    help = "Create, enrol and invite the learners listed in a CSV (name, email, course code)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("course_code")
        parser.add_argument("csv_path", type=Path)
        parser.add_argument("--invited-by", metavar="EMAIL", help="Instructor named in the email.")
        parser.add_argument(
            "--resend",
            action="store_true",
            help="Invite again listed learners who have not set a password yet.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        course = Course.objects.filter(code=options["course_code"]).first()
        if course is None:
            raise CommandError(f"No course with code {options['course_code']!r}.")
        invited_by = None
        if options["invited_by"]:
            invited_by = User.objects.filter(email=options["invited_by"].lower()).first()
            if invited_by is None:
                raise CommandError(f"No user {options['invited_by']!r}.")
        path: Path = options["csv_path"]
        try:
            with path.open("rb") as csv_file:
                report = learners_import(
                    course=course,
                    csv_file=csv_file,
                    invited_by=invited_by,
                    resend_invitations=options["resend"],
                )
        except OSError as error:
            raise CommandError(f"Cannot read {path}: {error}") from error
        except ImportFileError as error:
            raise CommandError(error.message) from error
        for row in report.created:
            self.stdout.write(f"line {row.line}: created and invited {row.email}")
        for row in report.enrolled:
            self.stdout.write(f"line {row.line}: enrolled existing account {row.email}")
        for row in report.reinvited:
            self.stdout.write(f"line {row.line}: invitation sent again to {row.email}")
        for line_error in report.errors:
            self.stderr.write(f"line {line_error.line}: {line_error.message}")
        self.stdout.write(
            f"{len(report.created)} created, {len(report.enrolled)} enrolled, "
            f"{len(report.already_enrolled)} already enrolled, {len(report.errors)} errors"
        )
        if report.errors:
            raise CommandError(f"{len(report.errors)} line(s) were not imported.")
