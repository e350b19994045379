from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """Sign-in, roles (reviewer, trainer; staff are admins) and the first admin account."""

    name = "webapp.accounts"
    label = "accounts"
    verbose_name = "Accounts and roles"

    def ready(self):
        from webapp.accounts import signals  # noqa: F401  (connects the receivers)
