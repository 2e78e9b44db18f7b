"""Create a course, or update the options given for an existing one (same code).

Options left out keep their current value on an existing course (the model default on a
new one), so re-running the command to change one setting cannot reset another.
"""

import argparse

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from server.courses.models import Course
from server.courses.services import course_create


class Command(BaseCommand):
    help = "Create a course (or update the named options of an existing course)."

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("code", help="course code (slug), e.g. dl_tokyo_2026")
        parser.add_argument("name", help="course name shown to learners")
        parser.add_argument("--quota", type=int, help="submissions per learner per day")
        parser.add_argument("--threshold", type=float, help="pass threshold, 0-1 (e.g. 0.98)")
        parser.add_argument(
            "--legacy",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="accept the legacy contract (func_predict notebooks); --no-legacy refuses it",
        )
        parser.add_argument(
            "--legacy-labelled",
            action=argparse.BooleanOptionalAction,
            default=None,
            help=(
                "run a legacy notebook the server cannot score without the labels WITH the "
                "hidden labels, storing its own (self-reported) score, instead of refusing it. "
                "Risk: hands the hidden labels to learner code. Default: refused"
            ),
        )
        parser.add_argument(
            "--self-reported-counts",
            action=argparse.BooleanOptionalAction,
            default=None,
            help=(
                "let self-reported scores count toward the pass threshold. Risk: the "
                "learner's code computed them and can forge them. Default: they do not count"
            ),
        )

    def handle(  # type: ignore[no-untyped-def]
        self,
        *args,
        code,
        name,
        quota,
        threshold,
        legacy,
        legacy_labelled,
        self_reported_counts,
        **options,
    ):
        fields: dict[str, object] = {}
        if quota is not None:
            if not 1 <= quota <= 1000:
                raise CommandError("--quota must be between 1 and 1000.")
            fields["daily_quota"] = quota
        if threshold is not None:
            if not 0.0 <= threshold <= 1.0:
                raise CommandError("--threshold must be between 0 and 1 (0.98 means 98 %).")
            fields["pass_threshold"] = threshold
        for field, value in (
            ("legacy_allowed", legacy),
            ("legacy_labelled_allowed", legacy_labelled),
            ("self_reported_counts", self_reported_counts),
        ):
            if value is not None:
                fields[field] = value
        try:
            # Validates the slug and lengths the way the admin form would.
            Course(code=code, name=name, **fields).clean_fields(exclude=["created_at"])
        except ValidationError as exc:
            raise CommandError(f"Invalid course: {exc.message_dict}") from exc
        existed = Course.objects.filter(code=code).exists()
        course = course_create(name=name, code=code, **fields)
        legacy_text = "allowed" if course.legacy_allowed else "refused"
        if course.legacy_allowed and course.legacy_labelled_allowed:
            legacy_text += " (labelled self-reported runs allowed)"
        counts_text = "count" if course.self_reported_counts else "do not count"
        self.stdout.write(
            self.style.SUCCESS(
                f"{'Updated' if existed else 'Created'} {course}: "
                f"{course.daily_quota} submissions/day, pass threshold "
                f"{course.pass_threshold:g}, legacy contract {legacy_text}, "
                f"self-reported scores {counts_text}."
            )
        )
