from django.apps import AppConfig


class ServingConfig(AppConfig):
    """The bottom of the app stack: model versions, which one is served, and the model worker that serves it."""

    name = "webapp.serving"
    label = "serving"
    verbose_name = "Model serving"
