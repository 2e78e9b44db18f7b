"""User.language may be empty: "not chosen yet", filled in at the first signed-in visit.

Accounts that never signed in (invited, not yet accepted) could not have chosen: their
default "ja" is cleared so that their browser decides. Accounts that have signed in keep
what they have, since a "ja" there may be a choice made on the settings page.
"""

from django.db import migrations, models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps


def clear_unchosen(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    User = apps.get_model("accounts", "User")
    User.objects.filter(last_login__isnull=True, language="ja").update(language="")


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_api_token"),
    ]

    operations = [
        migrations.AlterField(
            model_name="user",
            name="language",
            field=models.CharField(
                blank=True,
                choices=[("ja", "日本語"), ("en", "English")],
                default="",
                max_length=8,
                verbose_name="language",
            ),
        ),
        migrations.RunPython(clear_unchosen, migrations.RunPython.noop),
    ]
