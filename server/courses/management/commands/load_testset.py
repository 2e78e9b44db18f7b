"""Load a hidden test set (test_data.npy + test_label.npy) into a course."""

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from scorer.errors import ScoringError
from server.courses.models import Course
from server.courses.services import testset_load


class Command(BaseCommand):
    help = "Validate and store DIR/test_data.npy and DIR/test_label.npy as a course's test set."

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("course_code")
        parser.add_argument("directory", type=Path)
        parser.add_argument("--note", default="")
        parser.add_argument(
            "--train",
            type=Path,
            metavar="DIR",
            help="the course's public training set (train_data.npy, train_label.npy): "
            "results then show training accuracy beside test accuracy",
        )

    def handle(
        self,
        *args: Any,
        course_code: str,
        directory: Path,
        note: str,
        train: Path | None,
        **options: Any,
    ) -> None:
        course = Course.objects.filter(code=course_code).first()
        if course is None:
            raise CommandError(f"No course with code {course_code!r}.")
        try:
            testset = testset_load(
                course=course,
                data_path=directory / "test_data.npy",
                label_path=directory / "test_label.npy",
                note=note,
                train=(train / "train_data.npy", train / "train_label.npy") if train else None,
            )
        except ScoringError as error:
            raise CommandError(error.render()) from error
        self.stdout.write(
            self.style.SUCCESS(f"Loaded {testset} (sha256 {testset.sha256_data[:12]}…)")
        )
