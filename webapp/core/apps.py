from django.apps import AppConfig


class CoreConfig(AppConfig):
    """Site shell: home, health, navigation, the events websocket and the `up` command."""

    name = "webapp.core"
    label = "core"
    verbose_name = "Autodidact core"

    def ready(self):
        from webapp.core import session_end  # noqa: F401  (connects the sign-out receiver)
