"""The link now lives on the round (0003, 0004); a separate migration, so the copy is committed first."""
from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("training", "0004_copy_version_links"),
    ]

    operations = [
        migrations.RemoveField(model_name="modelversion", name="created_by_run"),
    ]
