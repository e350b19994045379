"""One training-data ledger: a verified chat repair is written to it as exactly the messages the model
was given, a training round's snapshot reads those rows (never a test-split task's), and the export
and the admin list the same rows."""
import io
import json

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

from webapp.chat import testing, threads
from webapp.chat.models import Conversation, Message
from webapp.datasets.models import TrainingExample
from webapp.puzzles.models import Attempt
from webapp.training import training_data

pytestmark = pytest.mark.django_db
PASSED = {"status": "passed", "detail": "", "tests": []}


def repaired_conversation(owner, source: str) -> Message:
    """task → answer → (an answer that failed mid-stream, beside it) → feedback → repair, tested."""
    conversation = Conversation.objects.create(owner=owner, kind="task", problem="Add two numbers.", source=source,
                                               tests=["assert add(1, 2) == 3"], entry_point="add")

    def message(**fields):
        return Message.objects.create(conversation=conversation, owner=owner, **fields)

    task = message(role="user", kind="task", content="Add two numbers (shown).", prompt="Add two numbers (model).")
    message(role="assistant", parent=task, status="failed", content="", turn=1)  # a failed try, not on the branch
    first = message(role="assistant", parent=task, content="```python\ndef add(a, b):\n    return a - b\n```",
                    code="def add(a, b):\n    return a - b\n", turn=1)
    feedback = message(role="user", kind="feedback", parent=first, content="Add them.",
                       prompt="Tests: 0 of 1 passed.\nFeedback: Add them.")
    repair = message(role="assistant", kind="repair", parent=feedback, turn=2, model_name="tiny",
                     content="```python\ndef add(a, b):\n    return a + b\n```", code="def add(a, b):\n    return a + b\n")
    testing.record_verdict(repair, dict(PASSED))
    return repair


def test_the_round_trains_on_exactly_the_ledger_rows():
    ada = User.objects.create_user("ada")
    repair = repaired_conversation(ada, "mbpp:601")  # a train task
    held_out = repaired_conversation(ada, "mbpp:11")  # a test task: in the ledger, never trained on
    row = TrainingExample.objects.get(source_message=repair)
    assert row.prompt == threads.model_history(repair)  # what the model was given for the repair
    assert [m["content"] for m in row.messages] == [
        "Add two numbers (model).", "```python\ndef add(a, b):\n    return a - b\n```",
        "Tests: 0 of 1 passed.\nFeedback: Add them.", "```python\ndef add(a, b):\n    return a + b\n```"]
    assert TrainingExample.objects.get(source_message=held_out).trainable is False

    examples, ids = training_data.collect(("chat",))
    assert ids == {"attempts": [], "examples": [row.pk]}
    assert [list(example.messages) for example in examples] == [row.messages]

    # The export lists the same rows the round read; --all adds the held-out one, flagged.
    out = io.StringIO()
    call_command("export_ledger", stdout=out, stderr=io.StringIO())
    exported = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(r["id"], r["messages"]) for r in exported] == [(row.pk, row.messages)]
    out = io.StringIO()
    call_command("export_ledger", "--all", stdout=out, stderr=io.StringIO())
    assert [r["trainable"] for r in map(json.loads, out.getvalue().splitlines())] == [True, False]


def test_a_snapshot_from_before_the_ledger_still_resolves():
    """Rounds snapshotted before the ledger stored chat message ids; a resumed one finds their rows."""
    ada = User.objects.create_user("ada")
    repair = repaired_conversation(ada, "user")
    row = TrainingExample.objects.get(source_message=repair)
    assert training_data.ledger_ids({"attempts": [], "messages": [repair.pk]}) == [row.pk]
    pairs = Attempt.objects.training_pairs().count()  # the seed puzzles' pairs, none in either snapshot
    assert training_data.new_since({"attempts": [], "messages": [repair.pk]}) == pairs
    assert training_data.new_since({"attempts": [], "examples": []}) == pairs + 1


def test_a_stopped_repair_is_not_kept():
    ada = User.objects.create_user("ada")
    conversation = Conversation.objects.create(owner=ada, kind="task", problem="p", tests=["assert f() == 1"],
                                               entry_point="f")
    stopped = Message.objects.create(conversation=conversation, owner=ada, role="assistant", kind="repair", turn=2,
                                     status="cancelled", content="```python\ndef f():\n    return 1\n```",
                                     code="def f():\n    return 1\n")
    testing.record_verdict(stopped, dict(PASSED))
    assert not TrainingExample.objects.exists()
