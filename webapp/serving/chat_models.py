"""Which model a conversation talks to. A person picks one per conversation: any packaged model that
is fetched here, or any trained version that was promoted; every reply names the model that wrote
it. Training rounds keep their own configured student (the served model).

The default (AUTODIDACT_CHAT_MODEL=auto) is the strongest packaged model that answers fast on a
CPU: Qwen2.5-Coder-0.5B-Instruct when it is fetched (measured here: 453 ms to the first token,
~17 tok/s on 2 cores, 31 of the first 40 HumanEval problems), else the served model.
"""
from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from webapp.refusals import Invalid

SERVED = ""  # the served model: the active version (or the configured model)
AUTO = "auto"
FAST_DEFAULT = "qwen2.5-coder-0.5b-instruct"


@dataclass(frozen=True)
class ChatModel:
    value: str  # what a conversation stores: "", "packaged:NAME" or "version:ID"
    label: str
    spec: str = ""  # for the loader ("" with value "" means: whatever is served)
    version_id: int | None = None


def _packaged() -> list[ChatModel]:
    from engine.lm.model_source import DEFAULT_DISPLAY_NAME
    from engine.lm.packaged_models import PACKAGED, installed

    found = [ChatModel("packaged:default", f"{DEFAULT_DISPLAY_NAME} (packaged default, Q4_1)", "")]
    found += [ChatModel(f"packaged:{m.name}", m.display_name, m.name) for m in PACKAGED.values() if installed(m.name)]
    return found


def _versions() -> list[ChatModel]:
    from webapp.serving.models import ModelVersion

    rows = ModelVersion.objects.filter(promoted_at__isnull=False).order_by("-promoted_at")[:20]
    return [ChatModel(f"version:{v.pk}", f"{v.name} (trained{', active' if v.is_active else ''})", v.spec, v.pk)
            for v in rows]


def available() -> list[ChatModel]:
    return [ChatModel(SERVED, "The served model (the active version)"), *_packaged(), *_versions()]


def default_value() -> str:
    wanted = settings.AUTODIDACT_CHAT_MODEL
    if wanted != AUTO:
        return wanted
    from engine.lm.packaged_models import installed

    return f"packaged:{FAST_DEFAULT}" if installed(FAST_DEFAULT) else SERVED


def resolve(value: str | None) -> ChatModel:
    """The model a stored or posted choice names; Invalid for one that is not available here."""
    value = (value or "").strip()
    for model in available():
        if model.value == value:
            return model
    raise Invalid(f"the model {value!r} is not available here; choose one from the list")
