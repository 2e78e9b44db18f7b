"""Writes for courses: create a course, enrol people, load a hidden test set."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Max

from scorer.testset import store_testset, store_training_set
from server.accounts.models import User
from server.courses.models import Course, Enrollment, Role, TestSet


def course_create(*, name: str, code: str, **options: Any) -> Course:
    course, _created = Course.objects.update_or_create(
        code=code, defaults={"name": name, **options}
    )
    return course


def enrollment_create(
    *,
    course: Course,
    email: str,
    role: str = Role.LEARNER,
    name: str = "",
    password: str | None = None,
) -> Enrollment:
    user = User.objects.filter(email=email.lower()).first()
    if user is None:
        user = User.objects.create_user(email=email, password=password, display_name=name)
    elif password:
        user.set_password(password)
        user.save(update_fields=["password"])
    enrollment, _created = Enrollment.objects.update_or_create(
        user=user, course=course, defaults={"role": role}
    )
    return enrollment


def testset_load(
    *,
    course: Course,
    data_path: Path,
    label_path: Path,
    note: str = "",
    train: tuple[Path, Path] | None = None,
) -> TestSet:
    """Validate and store a test set as the course's next version, and make it active.

    The files are copied under KATAKANA_TESTSETS_DIR (never web-served) with checksums;
    earlier versions stay on disk so old results remain explainable. ``train``: the
    course's public training set (images, labels), stored beside it so that results show
    training accuracy next to test accuracy.
    """
    version = (course.testsets.aggregate(v=Max("version"))["v"] or 0) + 1
    dest = Path(settings.KATAKANA_TESTSETS_DIR) / course.code / f"v{version}"
    info = store_testset(data_path, label_path, dest)
    if train is not None:
        store_training_set(*train, dest)
    with transaction.atomic():
        course.testsets.filter(is_active=True).update(is_active=False)
        return TestSet.objects.create(
            course=course,
            version=version,
            directory=str(dest),
            n=info.n,
            class_counts=list(info.class_counts),
            sha256_data=info.sha256_data,
            sha256_labels=info.sha256_labels,
            note=note,
        )
