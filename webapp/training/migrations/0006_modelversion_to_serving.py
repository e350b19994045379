"""ModelVersion belongs to the serving app now (serving 0001): the round's links name it there and the
training app forgets the model. State only: the table and its rows stay as they are."""
import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("training", "0005_remove_modelversion_created_by_run"),
        ("serving", "0001_initial"),
        ("chat", "0004_model_version_in_serving"),
        ("puzzles", "0006_model_version_in_serving"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="trainingrun",
                    name="base_version",
                    field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL,
                                            related_name="+", to="serving.modelversion"),
                ),
                migrations.AlterField(
                    model_name="trainingrun",
                    name="produced_version",
                    field=models.OneToOneField(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL,
                                               related_name="training_run", to="serving.modelversion"),
                ),
                migrations.DeleteModel(name="ModelVersion"),
            ],
            database_operations=[],
        ),
    ]
