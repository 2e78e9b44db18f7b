"""manage.py add_instructor COURSE_CODE EMAIL [--name NAME] [--staff]: make an instructor.

Creates the account if there is none (with an invitation email that sets the password,
sent through the outbox after commit) and enrols it as an instructor of the course; an
existing learner of the course becomes its instructor. ``--staff`` also opens the Django
admin to them. Safe to run twice.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.validators import validate_email
from django.db import transaction

from server.accounts.emails import invitation_outbox_create
from server.accounts.models import User
from server.courses.models import Course, Role
from server.courses.services import enrollment_create


class Command(BaseCommand):
    help = "Enrol a person as an instructor of a course (creating and inviting them if new)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("course_code")
        parser.add_argument("email")
        parser.add_argument("--name", default="", help="Display name for a new account.")
        parser.add_argument(
            "--staff", action="store_true", help="Also let them use the Django admin."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        course = Course.objects.filter(code=options["course_code"]).first()
        if course is None:
            raise CommandError(f"No course with code {options['course_code']!r}.")
        email = options["email"].strip().lower()
        try:
            validate_email(email)
        except Exception as error:
            raise CommandError(f"{email!r} is not an email address.") from error
        with transaction.atomic():
            existed = User.objects.filter(email=email).exists()
            enrollment = enrollment_create(
                course=course, email=email, role=Role.INSTRUCTOR, name=options["name"]
            )
            user = enrollment.user
            if options["staff"] and not user.is_staff:
                user.is_staff = True
                user.save(update_fields=["is_staff"])
            invited = not user.has_usable_password()
            if invited:
                invitation_outbox_create(user=user, course=course, invited_by=None)
        what = "existing account" if existed else "new account"
        self.stdout.write(
            f"{email} ({what}) is an instructor of {course.code}"
            + (", with the Django admin" if user.is_staff else "")
            + ("; an invitation to set a password is on its way." if invited else ".")
        )
