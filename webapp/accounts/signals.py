"""Flash messages for signing in and out."""
from django.contrib import messages
from django.contrib.auth.signals import user_logged_in, user_logged_out
from django.dispatch import receiver


@receiver(user_logged_in)
def _signed_in(sender, request, user, **kwargs):
    if request is not None and hasattr(request, "_messages"):
        messages.success(request, f"Signed in as {user.get_username()}.")


@receiver(user_logged_out)
def _signed_out(sender, request, user, **kwargs):
    if request is not None and hasattr(request, "_messages"):
        messages.info(request, "You have been signed out.")
