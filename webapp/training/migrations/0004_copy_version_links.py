"""Copy each version's round link onto the round (0003 added the column). Its own migration, so that
on PostgreSQL no table is altered in the transaction that updates rows pointing at it."""
from django.db import migrations


def copy_links(apps, schema_editor):
    version_model = apps.get_model("training", "ModelVersion")
    run_model = apps.get_model("training", "TrainingRun")
    for version_id, run_id in version_model.objects.exclude(created_by_run=None).values_list("pk", "created_by_run"):
        run_model.objects.filter(pk=run_id).update(produced_version_id=version_id)


def copy_back(apps, schema_editor):
    version_model = apps.get_model("training", "ModelVersion")
    run_model = apps.get_model("training", "TrainingRun")
    for run_id, version_id in run_model.objects.exclude(produced_version=None).values_list("pk", "produced_version"):
        version_model.objects.filter(pk=version_id).update(created_by_run_id=run_id)


class Migration(migrations.Migration):

    dependencies = [
        ("training", "0003_trainingrun_produced_version"),
    ]

    operations = [
        migrations.RunPython(copy_links, copy_back),
    ]
