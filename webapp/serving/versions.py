"""Which model version is active, and changing it (promote, rollback) so that the model worker
swaps models on its next request without a restart.

Each process re-reads the active version at most every CHECK_EVERY_S; the model runtime compares
it with what it has loaded before every use.
"""
from __future__ import annotations

import time

from django.db import IntegrityError, transaction
from django.utils import timezone

from webapp.refusals import Invalid, NotAllowed
from webapp.serving.models import ModelVersion

CHECK_EVERY_S = 2.0
_last: tuple[float, dict] | None = None  # (when read, active_serving()) in this process


def base_name() -> str:
    from webapp.serving.model_worker import describe_model

    return f"v0 · {describe_model().get('model', 'base model')} (base)"


def active_version() -> ModelVersion:
    """The active version; the base model becomes v0 the first time anyone asks."""
    version = ModelVersion.objects.filter(is_active=True).first()
    if version is not None:
        return version
    try:
        with transaction.atomic():
            return ModelVersion.objects.create(name=base_name(), status=ModelVersion.Status.ACTIVE, is_active=True,
                                               promoted_at=timezone.now(), reason="the configured base model")
    except IntegrityError:  # another process created it first
        return ModelVersion.objects.get(is_active=True)


def active_serving() -> dict:
    """{"id", "spec", "name"} of the active version, read at most every CHECK_EVERY_S per process:
    the model runtime asks before every request, and every process sees a promotion that soon."""
    global _last
    now = time.monotonic()
    if _last is None or now - _last[0] > CHECK_EVERY_S:
        version = active_version()
        _last = (now, {"id": version.pk, "spec": version.spec, "name": version.name})
    return _last[1]


def attributable(version_id: int | None) -> int | None:
    """`version_id` (what the runtime served a model as) if that version still exists: a record
    must never point at a deleted version, e.g. after a database reset under a running worker."""
    if version_id is None or not ModelVersion.objects.filter(pk=version_id).exists():
        return None
    return version_id


def forget_active() -> None:
    """This process reads the active version afresh on its next request."""
    global _last
    _last = None


def _activate(version: ModelVersion, reason: str) -> ModelVersion:
    with transaction.atomic():
        current = ModelVersion.objects.select_for_update().filter(is_active=True).exclude(pk=version.pk)
        current.update(is_active=False, status=ModelVersion.Status.RETIRED)
        version.is_active, version.status = True, ModelVersion.Status.ACTIVE
        version.promoted_at, version.reason = timezone.now(), reason
        version.save(update_fields=["is_active", "status", "promoted_at", "reason"])
    forget_active()
    return version


def promote(version: ModelVersion, reason: str, user=None) -> ModelVersion:
    """Make `version` the served model (admins only when a person asks)."""
    if user is not None and not user.is_staff:
        raise NotAllowed("only admins can promote a model version")
    if version.is_active:
        raise Invalid(f"{version.name} is already the active model")
    if version.checkpoint and not _loadable(version.checkpoint):
        raise Invalid(f"{version.name}: its checkpoint {version.checkpoint} is missing or incomplete")
    return _activate(version, reason)


def rollback(user=None) -> ModelVersion:
    """Serve the active version's parent again (the previous model)."""
    if user is not None and not user.is_staff:
        raise NotAllowed("only admins can roll back the model")
    current = active_version()
    if current.parent is None:
        raise Invalid(f"{current.name} has no parent to roll back to")
    reason = f"rolled back from {current.name}" + (f" by {user.get_username()}" if user else "")
    return _activate(current.parent, reason)


def _loadable(checkpoint: str) -> bool:
    """A sealed local folder (versions from before the model store), or a version the store holds whole."""
    from pathlib import Path

    from engine.lm.model_store import key_of
    from engine.training.checkpoints import is_complete
    from webapp.serving.model_store import published

    if key_of(checkpoint) is not None:
        return published(checkpoint)
    return is_complete(checkpoint) and (Path(checkpoint) / "config.json").is_file()


def iteration(version) -> int:
    """How many self-play rounds made `version`: its promoted ancestors back to the base (base: 0)."""
    depth, seen = 0, set()
    while version is not None and version.parent_id is not None and version.pk not in seen:
        seen.add(version.pk)
        version, depth = version.parent, depth + 1
    return depth
