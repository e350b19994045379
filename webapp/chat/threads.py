"""The message tree of a conversation: the branch on screen, siblings, and switching branches."""
from __future__ import annotations

from webapp.chat.models import Conversation, Message


def ancestors(message: Message, by_id: dict[int, Message] | None = None) -> list[Message]:
    """Root first, `message` last."""
    if by_id is None:
        by_id = {m.pk: m for m in Message.objects.filter(conversation_id=message.conversation_id)}
    path, seen = [], set()
    current: Message | None = message
    while current is not None and current.pk not in seen:
        seen.add(current.pk)
        path.append(current)
        current = by_id.get(current.parent_id) if current.parent_id else None
    return path[::-1]


def thread(conversation: Conversation) -> list[Message]:
    """The branch on screen: from the first message to the conversation's leaf."""
    by_id = {m.pk: m for m in conversation.messages.all()}
    if not by_id:
        return []
    leaf = by_id.get(conversation.leaf_id) or max(by_id.values(), key=lambda m: (m.created_at, m.pk))
    return ancestors(leaf, by_id)


def siblings(message: Message) -> list[Message]:
    """The alternatives at this point of the tree (edits of a user message, regenerated replies)."""
    return list(Message.objects.filter(conversation_id=message.conversation_id, parent_id=message.parent_id,
                                       role=message.role).order_by("created_at", "id"))


def latest_leaf_under(message: Message) -> Message:
    """Follow the newest child down to a leaf: switching to a branch shows its latest state."""
    children: dict[int | None, list[Message]] = {}
    for m in Message.objects.filter(conversation_id=message.conversation_id).order_by("created_at", "id"):
        children.setdefault(m.parent_id, []).append(m)
    current = message
    while children.get(current.pk):
        current = children[current.pk][-1]
    return current


def switch_to(message: Message) -> Message:
    """Show the branch through `message`; returns the new leaf."""
    leaf = latest_leaf_under(message)
    Conversation.objects.filter(pk=message.conversation_id).update(leaf=leaf)
    return leaf


def model_history(reply: Message) -> list[dict]:
    """The chat the model sees for `reply`: its branch (the dialog history, as in the MBPP
    dialog study), each message as the model was given it, without empty or failed turns."""
    history = []
    for message in ancestors(reply)[:-1]:
        text = message.prompt or message.content
        if text and message.status in (Message.Status.COMPLETE, Message.Status.CANCELLED):
            history.append({"role": message.role, "content": text})
    return history
