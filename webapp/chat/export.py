"""Conversations as JSON lines: every message of the tree (branches included) with its feedback,
code, sandbox verdict and rating, plus the dialog study's measures. One line per conversation."""
from __future__ import annotations

import json
from collections.abc import Iterable, Iterator

from webapp.chat.models import Conversation

FORMAT = "autodidact.chat/1"


def conversation_record(conversation: Conversation) -> dict:
    messages = list(conversation.messages.all())
    return {
        "format": FORMAT,
        "id": conversation.pk,
        "owner": conversation.owner.get_username(),
        "title": conversation.title,
        "kind": conversation.kind,
        "source": conversation.source,
        "task": {"problem": conversation.problem, "tests": conversation.tests,
                 "entry_point": conversation.entry_point, "sat": conversation.sat},
        "turns": conversation.turns,
        "solved": conversation.solved,
        "first_success_turn": conversation.first_success_turn,
        "leaf": conversation.leaf_id,
        "created_at": conversation.created_at.isoformat(),
        "messages": [{
            "id": m.pk, "parent": m.parent_id, "role": m.role, "kind": m.kind, "content": m.content,
            "model_input": m.prompt or None, "status": m.status, "finish_reason": m.finish_reason,
            "model": m.model_name or None, "turn": m.turn or None, "code": m.code or None,
            "verdict": m.verdict, "rating": {1: "up", -1: "down"}.get(m.rating),
            "rating_reason": m.rating_reason or None, "created_at": m.created_at.isoformat(),
        } for m in messages],
    }


def iter_jsonl(conversations: Iterable[Conversation]) -> Iterator[str]:
    for conversation in conversations:
        yield json.dumps(conversation_record(conversation), ensure_ascii=False) + "\n"


def exportable(owner=None, with_feedback_only: bool = False):
    """Conversations to export, oldest first; optionally only those with a feedback turn."""
    queryset = Conversation.objects.select_related("owner").prefetch_related("messages").order_by("id")
    if owner is not None:
        queryset = queryset.filter(owner=owner)
    if with_feedback_only:
        queryset = queryset.filter(messages__kind="feedback").distinct()
    return queryset
