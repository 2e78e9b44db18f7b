"""The outbox moved from the submissions app to its own: rows, table and admin survive."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = ("submissions", "0007_rescore_previous_accuracy")


@pytest.mark.django_db(transaction=True)
def test_an_email_owed_before_the_move_is_still_owed_after_it() -> None:
    executor = MigrationExecutor(connection)
    leaves = executor.loader.graph.leaf_nodes()
    executor.migrate([("outbox", None)])  # and submissions.0008, which depends on it
    others = [leaf for leaf in leaves if leaf[0] not in ("outbox", "submissions")]
    old = executor.loader.project_state([*others, BEFORE]).apps
    user = old.get_model("accounts", "User").objects.create(email="a@example.com")
    course = old.get_model("courses", "Course").objects.create(code="moved", name="Moved")
    old.get_model("submissions", "OutboxEmail").objects.create(
        kind="invitation", recipient=user, course=course, to="a@example.com"
    )
    content_types = old.get_model("contenttypes", "ContentType").objects
    content_types.get_or_create(app_label="submissions", model="outboxemail")

    executor = MigrationExecutor(connection)
    executor.migrate(leaves)

    from django.contrib.contenttypes.models import ContentType

    from server.outbox.models import OutboxEmail

    (email,) = OutboxEmail.objects.filter(course__code="moved")
    assert (email.kind, email.to, email.recipient_id) == ("invitation", "a@example.com", user.pk)
    assert OutboxEmail._meta.db_table == "submissions_outboxemail"
    # The admin's permissions and history hang on the content type: it moved along.
    assert ContentType.objects.filter(app_label="outbox", model="outboxemail").exists()
    assert not ContentType.objects.filter(app_label="submissions", model="outboxemail").exists()
