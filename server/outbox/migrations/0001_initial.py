"""The outbox moves from the submissions app to its own: the table stays as it was.

State only (``SeparateDatabaseAndState``): the model appears here while
``submissions.0008`` removes it there, and the table, its rows, constraints and index are
untouched. Its content type (and so the admin's permissions and log) moves along.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def _relabel(apps, schema_editor, old: str, new: str) -> None:  # type: ignore[no-untyped-def]
    ContentType = apps.get_model("contenttypes", "ContentType")
    ContentType.objects.filter(app_label=old, model="outboxemail").update(app_label=new)


def move_content_type(apps, schema_editor) -> None:  # type: ignore[no-untyped-def]
    _relabel(apps, schema_editor, "submissions", "outbox")


def move_content_type_back(apps, schema_editor) -> None:  # type: ignore[no-untyped-def]
    _relabel(apps, schema_editor, "outbox", "submissions")


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('courses', '0004_overfit_gap'),
        ('submissions', '0007_rescore_previous_accuracy'),
        ('contenttypes', '0002_remove_content_type_name'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
        migrations.CreateModel(
            name='OutboxEmail',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('generation', models.PositiveIntegerField(blank=True, null=True)),
                ('kind', models.CharField(choices=[('result', 'result'), ('failure', 'failure'), ('invitation', 'invitation'), ('password_reset', 'password reset'), ('enrolment', 'added to a course')], max_length=16)),
                ('previous_accuracy', models.FloatField(blank=True, null=True)),
                ('to', models.EmailField(max_length=254)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('sent_at', models.DateTimeField(blank=True, null=True)),
                ('attempts', models.PositiveSmallIntegerField(default=0)),
                ('claimed_until', models.DateTimeField(blank=True, null=True)),
                ('last_error', models.TextField(blank=True)),
                ('skipped', models.BooleanField(default=False, help_text='Not sent on purpose: the learner opted out of result emails, or an invited learner had already set a password.')),
                ('course', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='courses.course')),
                ('invited_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('recipient', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='invitation_emails', to=settings.AUTH_USER_MODEL)),
                ('submission', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='emails', to='submissions.submission')),
            ],
            options={
                'db_table': 'submissions_outboxemail',
                'indexes': [models.Index(condition=models.Q(('sent_at__isnull', True), ('skipped', False)), fields=['created_at'], name='outbox_email_unsent')],
                'constraints': [models.UniqueConstraint(fields=('submission', 'generation'), name='one_email_per_generation'), models.CheckConstraint(condition=models.Q(models.Q(('course__isnull', False), ('kind__in', ['invitation', 'enrolment']), ('recipient__isnull', False), ('submission__isnull', True)), models.Q(('kind', 'password_reset'), ('recipient__isnull', False), ('submission__isnull', True)), models.Q(models.Q(('kind__in', ['invitation', 'enrolment', 'password_reset']), _negated=True), ('generation__isnull', False), ('recipient__isnull', True), ('submission__isnull', False)), _connector='OR'), name='outbox_email_has_one_subject')],
            },
        ),
            ],
        ),
        migrations.RunPython(move_content_type, move_content_type_back),
    ]
