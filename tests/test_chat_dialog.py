"""The code chat's turns against real workers (a model worker serving a tiny random model, a
verify worker with the sandbox) on PostgreSQL and Redis: tasks, feedback repairs, branches,
refusals that lose nothing, ratings, and the JSONL export."""
import io
import json
import time

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.core.management import call_command
from django.db import connection
from django.test import Client

from engine.lm.tiny import build_tiny_model
from tests.support import start_worker, stop_worker
from webapp.chat import rate_limits, testing, threads, user_turns
from webapp.chat.models import Conversation, Message
from webapp.datasets.models import TrainingExample
from webapp.serving import chat_models, model_worker

pytestmark = pytest.mark.django_db(transaction=True)
TESTS = ["assert add(1, 2) == 3", "assert add(-1, 1) == 0"]
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture(scope="module")
def workers(django_db_setup, django_db_blocker, redis_url, tmp_path_factory):
    """A model worker (tiny random model, short replies) and a verify worker on pytest's database."""
    with django_db_blocker.unblock():
        db = connection.settings_dict
        database_url = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    env = {"DATABASE_URL": database_url, "AUTODIDACT_MODEL": str(build_tiny_model(tmp_path_factory.mktemp("tiny"))),
           "AUTODIDACT_PRELOAD_MODEL": "1", "AUTODIDACT_CHAT_MAX_TOKENS": "8"}
    started = []
    try:
        started.append(start_worker("gpu-dialog", "gpu", "solo", env)[0])
        started.append(start_worker("verify-dialog", "verify", "solo", env)[0])
        yield
    finally:
        for proc in started:
            stop_worker(proc)


@pytest.fixture
def ada(workers):
    return User.objects.create_user("ada", password="x")


@pytest.fixture
def client(ada):
    client = Client()
    client.force_login(ada)
    return client


def wait_for(predicate, timeout=60.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def finished(message_id: int, timeout: float = 60.0) -> Message:
    """The reply once written and, in a conversation with tests, tested."""
    def ready():
        message = Message.objects.get(pk=message_id)
        tested = not message.conversation.has_tests or (message.verdict and message.verdict["status"] != "running")
        return message if message.status != "streaming" and tested else None

    return wait_for(ready, timeout=timeout, what=f"message {message_id} to finish")


def test_a_task_is_answered_tested_and_measured(client, ada):
    response = client.post("/chat/new/", {"kind": "task", "problem": "Add two numbers.", "tests": "\n".join(TESTS)})
    assert response.status_code == 302
    conversation = Conversation.objects.get(owner=ada)
    assert conversation.entry_point == "add" and conversation.tests == TESTS
    task, reply = threads.thread(conversation)
    assert task.kind == "task" and "expert Python programmer" in task.prompt and "assert add(1, 2) == 3" in task.prompt
    reply = finished(reply.pk)
    # The tiny random model writes no code block: that turn is recorded as failed, not skipped.
    assert reply.status == "complete" and reply.turn == 1
    assert reply.verdict["status"] == "error" and "no code block" in reply.verdict["detail"]
    conversation.refresh_from_db()
    assert (conversation.turns, conversation.solved, conversation.first_success_turn) == (1, False, None)
    page = client.get(f"/chat/{conversation.pk}/").content.decode()
    assert "Feedback for a repair turn" in page and "no code block" in page


def test_feedback_repair_verified_by_the_sandbox_becomes_training_data(client, ada):
    conversation, reply = user_turns.open_conversation(ada, "task", problem="Add two numbers.", tests=TESTS)
    finished(reply.pk)
    response = client.post(f"/chat/{conversation.pk}/feedback/", {"feedback": "Return a + b, not a - b."}, **HTMX)
    assert response.status_code == 200 and "Return a + b, not a - b." in response.content.decode()
    conversation.refresh_from_db()
    feedback, repair = threads.thread(conversation)[-2:]
    assert feedback.kind == "feedback" and repair.kind == "repair" and repair.turn == 2
    # The repair prompt carries the test results and the feedback; the history carries the task and code.
    assert "0 of 0" not in feedback.prompt and "Feedback: Return a + b, not a - b." in feedback.prompt
    history = threads.model_history(repair)
    assert [m["role"] for m in history] == ["user", "assistant", "user"] and "expert Python" in history[0]["content"]
    finished(repair.pk)

    # Suppose the model's repair had been this (the tiny model cannot write it): the verify worker
    # runs it in the sandbox, and the verified repair is kept as training data with its provenance.
    answer = "Fixed:\n```python\ndef add(a, b):\n    return a + b\n```"
    Message.objects.filter(pk=repair.pk).update(content=answer, model_name="tiny-test-model")
    testing.after_reply(repair.pk)
    repaired = finished(repair.pk)
    assert repaired.verdict["status"] == "passed" and [t["status"] for t in repaired.verdict["tests"]] == ["passed"] * 2
    conversation.refresh_from_db()
    assert (conversation.turns, conversation.solved, conversation.first_success_turn) == (2, True, 2)
    example = TrainingExample.objects.get(source_message=repair)
    assert example.provenance == "human-feedback repair" and example.feedback == "Return a + b, not a - b."
    assert example.model_name == "tiny-test-model" and "return a + b" in example.code and example.turn == 2
    assert example.prompt[-1]["content"] == feedback.prompt and example.verdict["status"] == "passed"

    # The page shows the diff against the previous turn's code... which had none; a second repair shows one.
    page = client.get(f"/chat/{conversation.pk}/").content.decode()
    assert "solved" in page and 'data-testid="first-success">2<' in page


def test_new_users_small_stumbles(client, ada, caplog):
    # A puzzle chat is titled after its puzzle; a task chat after its task.
    conversation, reply = user_turns.open_conversation(
        ada, "puzzle", sat='def sat(s: str):\n    """Find a string with three a\'s."""\n    return s.count("a") == 3')
    finished(reply.pk)
    other, reply = user_turns.open_conversation(ada, "puzzle", sat="def sat(n: int, k=3):\n    return n % k == 1")
    finished(reply.pk)
    task, reply = user_turns.open_conversation(ada, "task", problem="Add two numbers.\nMore words.", tests=TESTS)
    finished(reply.pk)
    assert [str(conversation), str(other), str(task)] == [
        "Puzzle: Find a string with three a's.", "Puzzle sat(n: int, k=3)", "Add two numbers."]
    # An unknown kind is refused, not turned into a free chat.
    count = Conversation.objects.filter(owner=ada).count()
    response = client.post("/chat/new/", {"kind": "poem", "text": "hello"})
    assert response.status_code == 400 and "unknown conversation kind" in response.content.decode().lower()
    # 3 MB in one post: one clear sentence, nothing saved, no traceback in the log.
    response = client.post(f"/chat/{task.pk}/send/", {"text": "x" * 3_000_000}, **HTMX)
    assert response.status_code == 413 and "too much text to send at once" in response.content.decode()
    assert Conversation.objects.filter(owner=ada).count() == count
    assert not [r for r in caplog.records if r.exc_info]
    # "1 of 3 tests passed", not "failed 3 tests".
    wait_for(lambda: Message.objects.get(pk=reply.pk).verdict.get("status") not in (None, "running"),
             what="the first answer's tests")
    Message.objects.filter(pk=reply.pk).update(verdict={"status": "failed", "tests": [
        {"test": t, "status": s, "detail": ""} for t, s in zip(TESTS + ["assert add(0, 0) == 0"] * 3,
                                                               ("passed", "failed", "passed"))]})
    page = client.get(f"/chat/{task.pk}/").content.decode()
    assert 'data-testid="tests-passed">2 of 3 tests passed<' in page


def test_a_conversation_picks_its_model_and_every_reply_names_it(client, ada, settings):
    qwen = "packaged:qwen2.5-coder-0.5b-instruct"
    settings.AUTODIDACT_CHAT_MODEL = "auto"  # the product's default: the fast packaged coder
    assert chat_models.default_value() == qwen
    page = client.get("/chat/").content.decode()
    assert f'<option value="{qwen}" selected>' in page and '<option value="">The served model' in page
    client.post("/chat/new/", {"kind": "free", "text": "Say hi.", "chat_model": qwen})
    conversation = Conversation.objects.get(owner=ada)
    # the 0.5B loads in the chat worker first; on a slow 2-core host its reply took over 60 s
    first = finished(conversation.messages.get(role="assistant").pk, timeout=300.0)
    assert conversation.chat_model == qwen and first.status == "complete"
    assert first.model_name.startswith("Qwen2.5-Coder-0.5B-Instruct")
    # Switched to the served (tiny) model: the next reply says so, the first keeps its name.
    client.post(f"/chat/{conversation.pk}/model/", {"chat_model": ""})
    conversation.refresh_from_db()
    _, second = user_turns.send(conversation, "And again.")
    second = finished(second.pk)
    assert second.model_name and not second.model_name.startswith("Qwen")
    page = client.get(f"/chat/{conversation.pk}/").content.decode()
    assert first.model_name in page and second.model_name in page
    # A model that is not available here is refused, and nothing is saved.
    response = client.post("/chat/new/", {"kind": "free", "text": "x", "chat_model": "packaged:gpt-9"})
    assert response.status_code == 400 and "not available here" in response.content.decode()
    assert Conversation.objects.filter(owner=ada).count() == 1


def test_failing_tests_report_each_assert_with_its_reason(ada):
    conversation = Conversation.objects.create(owner=ada, kind="task", problem="p", entry_point="add",
                                               tests=TESTS + ["assert add(2, 2) == 4", "assert add(0, 0) == 0"])
    reply = Message.objects.create(conversation=conversation, owner=ada, role="assistant", turn=1,
                                   code="def add(a, b):\n    if a == 2:\n        while True: pass\n    return a - b\n")
    verdict = testing.run_tests(reply.pk)
    rows = [(t["status"], t["detail"]) for t in verdict["tests"]]
    assert rows[0] == ("failed", "assert add(1, 2) == 3 (got -1)")
    assert rows[1][0] == "failed" and rows[2][0] == "timeout" and rows[3][0] == "not run"


def test_a_puzzle_conversation_checks_sol_against_sat(ada):
    conversation, reply = user_turns.open_conversation(ada, "puzzle", sat="def sat(s: str):\n    return s.count('a') == 3")
    assert "sol()" in threads.thread(conversation)[0].prompt
    finished(reply.pk)
    Message.objects.filter(pk=reply.pk).update(code="def sol():\n    return 'aaa'\n")
    assert testing.run_tests(reply.pk)["status"] == "passed"
    Message.objects.filter(pk=reply.pk).update(code="def sol():\n    return 'aa'\n")
    assert testing.run_tests(reply.pk)["status"] == "failed"
    with pytest.raises(ValueError, match="not a P3 puzzle"):
        user_turns.open_conversation(ada, "puzzle", sat="def sat(*args):\n    return True")


def test_edits_and_regenerations_are_branches_that_are_all_kept(client, ada):
    conversation, first_reply = user_turns.open_conversation(ada, "free", text="Hello")
    finished(first_reply.pk)
    stale = Conversation.objects.get(pk=conversation.pk)  # as a long-lived socket holds it
    asked, reply = user_turns.send(conversation, "Write a loop")
    finished(reply.pk)
    assert asked.parent_id == first_reply.pk
    assert user_turns.start_turn(stale, "and then?")[0].parent_id == reply.pk  # the stored leaf, not the stale one
    Message.objects.filter(conversation=conversation).exclude(pk__lte=reply.pk).delete()
    Conversation.objects.filter(pk=conversation.pk).update(leaf=reply)
    response = client.post(f"/chat/messages/{asked.pk}/edit/", {"text": "Write a while loop"}, **HTMX)
    assert response.status_code == 200
    conversation.refresh_from_db()
    edited = threads.thread(conversation)[-2]
    assert edited.content == "Write a while loop" and edited.parent_id == asked.parent_id
    assert 'data-testid="branch-position">2/2<' in response.content.decode()
    finished(conversation.leaf_id)
    regenerated = user_turns.regenerate(Message.objects.get(pk=conversation.leaf_id))
    finished(regenerated.pk)
    conversation.refresh_from_db()
    assert [m.content for m in threads.thread(conversation)][:3] == ["Hello", first_reply.content or
                                                                     Message.objects.get(pk=first_reply.pk).content,
                                                                     "Write a while loop"]
    # Back to the first version of the question: its own reply is still there.
    client.post(f"/chat/messages/{asked.pk}/show/", **HTMX)
    conversation.refresh_from_db()
    assert threads.thread(conversation)[-2].pk == asked.pk
    assert conversation.messages.count() == 7  # 2 + 2 + 2 (edit) + 1 (regenerated)


def test_refusals_save_nothing_and_say_why(client, ada, settings):
    conversation, reply = user_turns.open_conversation(ada, "free", text="Hi")
    finished(reply.pk)
    # Busy: one reply at a time per user (a placeholder nobody has picked up stays streaming).
    _, pending = user_turns.start_turn(conversation, "still thinking")
    response = client.post(f"/chat/{conversation.pk}/send/", {"text": "again"}, **HTMX)
    assert response.status_code == 409 and "still being written" in response.content.decode()
    Message.objects.filter(pk__in=[pending.pk, pending.parent_id]).delete()
    Conversation.objects.filter(pk=conversation.pk).update(leaf=reply)
    count = conversation.messages.count()

    # Rate limited: 429 with Retry-After, nothing saved.
    settings.AUTODIDACT_CHAT_RATE_LIMIT = "2/hour"
    rate_limits.reset(ada.pk)
    rate_limits.consume(ada.pk)
    rate_limits.consume(ada.pk)
    response = client.post(f"/chat/{conversation.pk}/send/", {"text": "one more"}, **HTMX)
    assert response.status_code == 429 and "limit of model replies (2/hour)" in response.content.decode()
    assert 0 < int(response["Retry-After"]) <= 3600
    settings.AUTODIDACT_CHAT_RATE_LIMIT = ""

    # The model worker is down (its heartbeat says stopped): 503, nothing saved, the reason shown.
    state = cache.get(model_worker.STATE_KEY)
    cache.set(model_worker.STATE_KEY, {**state, "state": "stopped"})
    try:
        response = client.post(f"/chat/{conversation.pk}/send/", {"text": "are you there?"}, **HTMX)
        assert response.status_code == 503 and "model worker is not running" in response.content.decode()
        response = client.post("/chat/new/", {"kind": "free", "text": "a new one"})
        assert response.status_code == 503 and "a new one" in response.content.decode()  # the text is kept
    finally:
        cache.set(model_worker.STATE_KEY, state)
    assert conversation.messages.count() == count and Conversation.objects.filter(owner=ada).count() == 1
    # Bad tasks: every problem named, the form kept.
    response = client.post("/chat/new/", {"kind": "task", "problem": "", "tests": "add(1)\nassert add(1 ==", "title": "T"})
    text = response.content.decode().lower()
    assert response.status_code == 400 and "describe the task" in text and "test 1 is not an assert" in text
    assert "test 2 is not valid python" in text and "assert add(1 ==" in text


def test_rename_search_delete_rate_and_ownership(client, ada):
    mine = Conversation.objects.create(owner=ada, title="Binary search")
    Message.objects.create(conversation=mine, owner=ada, role="user", content="How does bisect work?")
    answer = Message.objects.create(conversation=mine, owner=ada, role="assistant", content="It halves.")
    other = Conversation.objects.create(owner=User.objects.create_user("eve"), title="Eve's secret")
    assert "Binary search" in client.get("/chat/?q=bisect").content.decode()
    assert "Binary search" not in client.get("/chat/?q=quicksort").content.decode()
    assert "Eve&#x27;s secret" not in client.get("/chat/").content.decode()
    assert client.get(f"/chat/{other.pk}/").status_code == 404
    assert client.post(f"/chat/{other.pk}/delete/").status_code == 404

    client.post(f"/chat/{mine.pk}/rename/", {"title": "Bisection"})
    mine.refresh_from_db()
    assert mine.title == "Bisection"
    response = client.post(f"/chat/messages/{answer.pk}/rate/", {"value": "down", "reason": "too short"}, **HTMX)
    answer.refresh_from_db()
    assert (answer.rating, answer.rating_reason) == (-1, "too short") and 'aria-pressed="true"' in response.content.decode()
    client.post(f"/chat/messages/{answer.pk}/rate/", {"value": "clear"}, **HTMX)
    answer.refresh_from_db()
    assert answer.rating is None

    client.post(f"/chat/{mine.pk}/delete/")
    assert not Conversation.objects.filter(pk=mine.pk).exists() and Conversation.objects.filter(pk=other.pk).exists()


def test_export_as_jsonl_download_and_command(client, ada, tmp_path):
    conversation = Conversation.objects.create(owner=ada, kind="task", problem="Add.", tests=TESTS, entry_point="add",
                                               turns=2, solved=True, first_success_turn=2)
    task = Message.objects.create(conversation=conversation, owner=ada, role="user", kind="task", content="Add.")
    answer = Message.objects.create(conversation=conversation, owner=ada, role="assistant", parent=task, turn=1,
                                    content="```python\ndef add(a, b): return a - b\n```", rating=-1,
                                    rating_reason="wrong sign", verdict={"status": "failed", "tests": []})
    Message.objects.create(conversation=conversation, owner=ada, role="user", kind="feedback", parent=answer,
                           content="Use plus.")
    Conversation.objects.create(owner=User.objects.create_user("eve"), title="not exported for ada")

    response = client.get("/chat/export.jsonl")
    assert response["Content-Type"] == "application/x-ndjson" and "attachment" in response["Content-Disposition"]
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert len(lines) == 1
    # ?all=1 is for staff: anyone else still gets only their own conversations
    everyone = b"".join(client.get("/chat/export.jsonl?all=1").streaming_content).decode().splitlines()
    assert [json.loads(line)["id"] for line in everyone] == [conversation.pk]
    User.objects.filter(pk=ada.pk).update(is_staff=True)
    everyone = b"".join(client.get("/chat/export.jsonl?all=1").streaming_content).decode().splitlines()
    assert len(everyone) == 2
    record = json.loads(lines[0])
    assert record["format"] == "autodidact.chat/1" and record["solved"] and record["first_success_turn"] == 2
    kinds = [(m["role"], m["kind"]) for m in record["messages"]]
    assert kinds == [("user", "task"), ("assistant", "chat"), ("user", "feedback")]
    assert record["messages"][1]["rating"] == "down" and record["messages"][1]["verdict"]["status"] == "failed"
    assert record["messages"][2]["parent"] == answer.pk

    out = tmp_path / "chats.jsonl"
    err = io.StringIO()
    call_command("export_chats", "--output", str(out), "--feedback-only", stderr=err)
    assert "exported 1 conversation" in err.getvalue()
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == [conversation.pk]


def test_mbpp_tasks_come_from_the_data_folder_but_never_from_the_test_split(client, ada):
    response = client.post("/chat/new/", {"kind": "task", "mbpp_id": "11"})
    assert response.status_code == 400 and "test split" in response.content.decode()
    conversation, reply = user_turns.open_conversation(ada, "task", mbpp_id="601")
    assert conversation.source == "mbpp:601" and len(conversation.tests) == 3
    assert conversation.entry_point and conversation.entry_point in conversation.tests[0]
    finished(reply.pk)
    with pytest.raises(ValueError, match="no MBPP task 9999"):
        user_turns.open_conversation(ada, "task", mbpp_id="9999")
