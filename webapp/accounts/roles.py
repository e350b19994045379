"""Roles are Django groups; staff hold every role. One place decides who may do what."""
from __future__ import annotations

REVIEWER = "reviewer"
TRAINER = "trainer"
ROLE_GROUPS = (REVIEWER, TRAINER)


def has_role(user, role: str) -> bool:
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    if user.is_staff:
        return True
    return user.groups.filter(name=role).exists()


def is_reviewer(user) -> bool:
    return has_role(user, REVIEWER)


def is_trainer(user) -> bool:
    return has_role(user, TRAINER)


def roles_of(user) -> list[str]:
    """Role names to show in the user menu ('admin' first for staff)."""
    if not getattr(user, "is_authenticated", False):
        return []
    if user.is_staff:
        return ["admin", *ROLE_GROUPS]
    return sorted(user.groups.filter(name__in=ROLE_GROUPS).values_list("name", flat=True))
