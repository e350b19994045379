"""The periodic training trigger and the stall reaper, created once as beat entries in the
database, so that their schedule and `min_new_examples` are edited in the admin and stay edited
(entries in settings.CELERY_BEAT_SCHEDULE are rewritten at every beat start)."""
import json

from django.db import migrations

ENTRIES = (
    ("training-auto-round", "training.auto_round", 3600, {"min_new_examples": 200},
     "Start a training round when at least min_new_examples new verified examples exist since the last "
     "round. Extra kwargs are round settings (e.g. \"sft\": {\"method\": \"lora\"})."),
    ("training-reap-stalled", "training.reap_stalled", 60, {},
     "Mark rounds whose worker stopped heartbeating as failed (resumable) and release the one-round lock."),
)


def create(apps, schema_editor):
    interval_model = apps.get_model("django_celery_beat", "IntervalSchedule")
    task_model = apps.get_model("django_celery_beat", "PeriodicTask")
    for name, task, seconds, kwargs, description in ENTRIES:
        every, _ = interval_model.objects.get_or_create(every=seconds, period="seconds")
        task_model.objects.get_or_create(name=name, defaults={"task": task, "interval": every,
                                                              "kwargs": json.dumps(kwargs),
                                                              "description": description})


def remove(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name__in=[e[0] for e in ENTRIES]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("training", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create, remove)]
