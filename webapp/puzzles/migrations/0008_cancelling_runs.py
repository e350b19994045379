"""Generation runs cancel as training rounds do: a `cancel_requested` flag instead of a `cancelling`
status. A run that was cancelling keeps going to its next step with the flag set."""
from django.db import migrations


def forward(apps, schema_editor):
    runs = apps.get_model("puzzles", "GenerationRun")
    runs.objects.filter(status="cancelling").update(status="running", cancel_requested=True)


def backward(apps, schema_editor):
    runs = apps.get_model("puzzles", "GenerationRun")
    runs.objects.filter(status__in=["queued", "running"], cancel_requested=True).update(status="cancelling")


class Migration(migrations.Migration):

    dependencies = [
        ("puzzles", "0007_generationrun_background_run"),
    ]

    operations = [
        migrations.RunPython(forward, backward),
    ]
