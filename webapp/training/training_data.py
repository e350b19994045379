"""The verified data a round trains on, read from the database at the moment the round starts:
kept solutions of puzzles that may be trained on (never the test split, never rejected or
flagged ones) in the P3 f/g/assert format, and chat repairs that passed their tests, as the
conversation that led to them, in the chat format. The round stores the ids and a content hash."""
from __future__ import annotations

from engine.datasets.mbpp import split_of
from engine.selfplay.training_text import training_example
from engine.training.packing import TrainingText
from webapp.chat.models import Conversation, Message
from webapp.puzzles.models import Attempt

SOURCES = ("selfplay", "chat")


def _trainable_conversation(conversation: Conversation) -> bool:
    source = conversation.source or ""
    if source.startswith("mbpp:"):
        try:
            return split_of(int(source.split(":", 1)[1])) != "test"
        except ValueError:
            return False
    return not source.startswith(("humaneval", "p3-test"))


def puzzle_pairs(since_id: int = 0):
    return Attempt.objects.training_pairs().filter(id__gt=since_id).select_related("puzzle").order_by("id")


def solved_repairs(since_id: int = 0):
    return (Message.objects.filter(role=Message.Role.ASSISTANT, kind=Message.Kind.REPAIR,
                                   status=Message.Status.COMPLETE, verdict__status="passed", id__gt=since_id)
            .select_related("conversation").order_by("id"))


def _path_to(message: Message) -> list[Message]:
    path, node = [], message
    while node is not None:
        path.append(node)
        node = node.parent
    return path[::-1]


def collect(sources=SOURCES) -> tuple[list[TrainingText], dict]:
    """Training examples and the snapshot record {"attempts": [ids], "messages": [ids]}."""
    examples, ids = [], {"attempts": [], "messages": []}
    if "selfplay" in sources:
        for attempt in puzzle_pairs():
            examples.append(TrainingText(training_example(attempt.puzzle.sat, attempt.code),
                                         source=f"attempt:{attempt.pk}"))
            ids["attempts"].append(attempt.pk)
    if "chat" in sources:
        for repair in solved_repairs():
            if not _trainable_conversation(repair.conversation):
                continue
            turns = tuple({"role": m.role, "content": (m.prompt or m.content) if m.role == "user" else m.content}
                          for m in _path_to(repair))
            examples.append(TrainingText(messages=turns, source=f"message:{repair.pk}"))
            ids["messages"].append(repair.pk)
    return examples, ids


def new_since(dataset: dict | None) -> int:
    """Verified examples that appeared after a round's snapshot (for the scheduled trigger)."""
    dataset = dataset or {}
    last_attempt = max(dataset.get("attempts") or [0])
    last_message = max(dataset.get("messages") or [0])
    return puzzle_pairs(last_attempt).count() + solved_repairs(last_message).count()
