"""Account set-up done by the main job on a fresh install."""
from __future__ import annotations

import os
import secrets
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import transaction


@dataclass
class CreatedAdmin:
    username: str
    password: str
    generated: bool


def ensure_admin_account() -> CreatedAdmin | None:
    """Create a local admin if there is no superuser yet; return it (with password) if created.

    The password comes from AUTODIDACT_ADMIN_PASSWORD, or is generated for the caller to print
    once; it is never stored anywhere but as Django's hash.
    """
    User = get_user_model()
    with transaction.atomic():
        if User.objects.filter(is_superuser=True).exists():
            return None
        username = os.environ.get("AUTODIDACT_ADMIN_USER", "admin")
        given = os.environ.get("AUTODIDACT_ADMIN_PASSWORD", "")
        password = given or secrets.token_urlsafe(12)
        base, n = username, 1
        while User.objects.filter(username=username).exists():  # never take over an existing user
            n += 1
            username = f"{base}{n}"
        User.objects.create_superuser(username=username, email="", password=password)
    return CreatedAdmin(username, password, generated=not given)
