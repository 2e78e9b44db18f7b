"""Set up the demo course: a hidden test set from demodata, one learner, one instructor."""

import tempfile
from pathlib import Path

from django.core.management.base import BaseCommand

import demodata
from server.courses.models import Role
from server.courses.services import course_create, enrollment_create, testset_load

DEMO_CODE = "dl_demo_2026"
ACCOUNTS = [
    ("instructor@example.com", "講師 太郎", Role.INSTRUCTOR, "demo-instructor"),
    ("learner@example.com", "受講 花子", Role.LEARNER, "demo-learner"),
]


class Command(BaseCommand):
    help = "Create (or refresh) the demo course, its test set and the demo accounts."

    def handle(self, *args, **options):  # type: ignore[no-untyped-def]
        course = course_create(name="ディープラーニング講座 デモ (カタカナ識別)", code=DEMO_CODE)
        if course.active_testset is None:
            with tempfile.TemporaryDirectory() as tmp:
                files = demodata.materialise(Path(tmp))
                testset_load(
                    course=course,
                    data_path=files["test_data"],
                    label_path=files["test_label"],
                    note="demo test set rendered from fonts (demodata)",
                    train=(files["train_data"], files["train_label"]),
                )
        for email, name, role, password in ACCOUNTS:
            enrollment_create(course=course, email=email, role=role, name=name, password=password)
        admin = enrollment_create(
            course=course,
            email="admin@example.com",
            role=Role.INSTRUCTOR,
            name="管理者",
            password="demo-admin",
        ).user
        admin.is_staff = admin.is_superuser = True
        admin.save(update_fields=["is_staff", "is_superuser"])
        self.stdout.write(self.style.SUCCESS(f"Demo course {course.code} is ready."))
        for email, _name, role, password in ACCOUNTS:
            self.stdout.write(f"  {role:<10} {email}  password: {password}")
        self.stdout.write("  admin      admin@example.com  password: demo-admin")
