"""The Autodidact Django project: settings, ASGI entry point, URLs and the Celery app."""
from webapp.celery_app import app as celery_app

__all__ = ("celery_app",)
