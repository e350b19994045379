"""The Celery application: configured from Django settings (namespace CELERY_), tasks autodiscovered."""
from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")


def make_celery_app(name: str = "autodidact") -> Celery:
    """A Celery app on the project's settings.

    The embedded runtime makes one per in-process worker, because a worker narrows its
    app's queue selection and two workers sharing one app would share that selection.
    Every project task is a `shared_task`, so each app gets all of them.
    """
    celery = Celery(name, set_as_current=(name == "autodidact"))
    celery.config_from_object("django.conf:settings", namespace="CELERY")
    celery.autodiscover_tasks()
    from webapp.serving.model_worker import ModelWorkerHeartbeat

    celery.steps["worker"].add(ModelWorkerHeartbeat)
    return celery


app = make_celery_app()
