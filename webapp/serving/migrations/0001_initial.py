"""ModelVersion moves here from the training app. Its table stays where it is
(`training_modelversion`): only Django's idea of which app owns it changes, so nothing is copied."""
import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ("training", "0005_remove_modelversion_created_by_run"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="ModelVersion",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False,
                                                   verbose_name="ID")),
                        ("name", models.CharField(max_length=120)),
                        ("checkpoint", models.CharField(blank=True, max_length=500)),
                        ("status", models.CharField(choices=[("active", "Active"), ("candidate", "Candidate"),
                                                             ("rejected", "Rejected"), ("retired", "Retired")],
                                                    default="candidate", max_length=16)),
                        ("is_active", models.BooleanField(default=False)),
                        ("metrics", models.JSONField(blank=True, default=dict)),
                        ("reason", models.TextField(blank=True)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        ("promoted_at", models.DateTimeField(blank=True, null=True)),
                        ("parent", models.ForeignKey(blank=True, null=True,
                                                     on_delete=django.db.models.deletion.SET_NULL,
                                                     related_name="children", to="serving.modelversion")),
                    ],
                    options={
                        "db_table": "training_modelversion",
                        "ordering": ["-created_at", "-id"],
                        "constraints": [models.UniqueConstraint(condition=models.Q(("is_active", True)),
                                                                fields=("is_active",),
                                                                name="one_active_model_version")],
                    },
                ),
            ],
            database_operations=[],
        ),
    ]
