"""Rounds stored before the chat-form code check keep their one-form check when resumed: their
"before" evaluation was measured in the 3-shot form only, so a new default must not ask the gate to
compare it with a two-form "after"."""
from django.db import migrations


def keep_one_form(apps, schema_editor):
    TrainingRun = apps.get_model("training", "TrainingRun")
    for run in TrainingRun.objects.all().only("pk", "config"):
        if isinstance(run.config, dict) and "chat_check" not in run.config:
            run.config = {**run.config, "chat_check": False}
            run.save(update_fields=["config"])


class Migration(migrations.Migration):

    dependencies = [
        ('training', '0007_trainingrun_rl_curve'),
    ]

    operations = [migrations.RunPython(keep_one_form, migrations.RunPython.noop)]
