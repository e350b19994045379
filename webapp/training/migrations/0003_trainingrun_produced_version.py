"""A round points at the version it produced (until now the version pointed at its round)."""
import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("training", "0002_default_schedule"),
    ]

    operations = [
        migrations.AddField(
            model_name="trainingrun",
            name="produced_version",
            field=models.OneToOneField(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL,
                                       related_name="training_run", to="training.modelversion"),
        ),
    ]
