"""The outbox model now lives in ``server.outbox`` (see ``outbox.0001``): state only."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('submissions', '0007_rescore_previous_accuracy'),
        ('outbox', '0001_initial'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="OutboxEmail")],
        ),
    ]
