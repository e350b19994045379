"""Dialog studies in the web app on PostgreSQL: a replay stored task by task with each kind's
per-turn curve, the SVG chart, the drill-down with diffs between turns (model text escaped),
JSONL export; live dialogs that start from the replay's failed first attempt, stop at the study's
number of feedback turns, and join the curve once finished. The replay runs in the test process
(`execute`) with a scripted student and hint writer against the real sandbox; the live dialog's
model turns run in Chromium (tests/test_chat_browser.py)."""
import json

import pytest
from django.conf import settings

from engine.datasets.mbpp import load_mbpp
from engine.lm.generation import Completion
from tests.support import signed_in_client as _client
from tests.support import user_with_roles as _user
from webapp.chat import user_turns
from webapp.chat.models import Conversation, Message
from webapp.refusals import Conflict, Invalid, NotAllowed
from webapp.studies import live, study_runs
from webapp.studies.models import Study

pytestmark = pytest.mark.django_db
HOSTILE = "<script>alert('x')</script>"


def block(code):
    return f"Here you go {HOSTILE}\n```python\n{code}\n```"


class Student:
    """MBPP 13 right at once; 11 and 12 wrong until the feedback names the expected value or says
    "carefully"; the control's words change nothing."""
    name, backend, quantization, device, tokenizer = "scripted-student", "scripted", "none", "cpu", None

    def __init__(self):
        self.tasks = {t.task_id: t for t in load_mbpp(settings.AUTODIDACT_BENCHMARK_DATA).values()}

    def sample_many(self, prompts, n, params, cancel=None):
        return [[Completion(self.answer(prompt), 5, "stop")] for prompt in prompts]

    def answer(self, messages):
        task = next(t for t in self.tasks.values() if t.text in messages[0]["content"] and 11 <= t.task_id <= 13)
        helped = len(messages) > 1 and ("should return" in messages[-1]["content"]
                                        or "carefully" in messages[-1]["content"])
        if task.task_id == 13 or helped:
            return block(task.code)
        name = task.code.split("def ", 1)[1].split("(", 1)[0]
        return block(f"def {name}(*args):\n    return None")


class HintWriter:
    """A good hint for 11; for 12 it pastes the reference's first line (rejected as a leak)."""

    def __init__(self, tasks):
        self.tasks = tasks

    def sample_many(self, prompts, n, params, cancel=None):
        out = []
        for prompt in prompts:
            text = prompt[-1]["content"] if isinstance(prompt, list) else prompt
            leak = self.tasks[12].code.splitlines()[1].strip() if self.tasks[12].text in text else ""
            out.append([Completion(f"Just write: {leak}" if leak else "Read the task carefully.", 6, "stop")])
        return out


@pytest.fixture
def trainer_user():
    return _user("tom", "trainer")


@pytest.fixture
def study(trainer_user):
    study = study_runs.start_study(trainer_user, "", {"limit": 3, "turns": 2}, "three tasks", enqueue=False)
    student = Student()
    study = study_runs.execute(study.pk, model=student, feedback_model=HintWriter(student.tasks))
    assert study.status == "succeeded", study.error
    return study


def test_who_may_start_and_bad_settings(trainer_user):
    reviewer = _user("rita", "reviewer")
    with pytest.raises(NotAllowed):
        study_runs.start_study(reviewer, enqueue=False)
    with pytest.raises(Invalid) as error:
        study_runs.start_study(trainer_user, settings_={"turns": 9, "kinds": ["tests", "praise"]}, enqueue=False)
    assert {"turns", "kinds"} <= set(error.value.fields)
    page = _client(trainer_user).post("/studies/", {"turns": "many", "kinds": ["tests"]})
    assert page.status_code == 400 and "turns must be a number" in page.content.decode().lower()
    assert _client(reviewer).post("/studies/", {"kinds": ["tests"]}).status_code == 403
    assert not Study.objects.exists()


def test_a_replay_gives_each_kind_its_curve_drill_down_and_export(study, trainer_user):
    summary = study.summary
    assert summary["turn0_solved"] == 1 and summary["failed"] == [11, 12]
    arms = summary["summary"]
    assert arms["tests"]["solved_by_turn"] == [0, 2, 2] and arms["tests"]["error_reduction"] == 1.0
    assert arms["hint"]["solved_by_turn"] == [0, 1, 1]  # 12's hints pasted code: rejected, the control's words sent
    assert arms["none"]["solved_by_turn"] == [0, 0, 0] and summary["hint_rejections"]["code"] == 2
    assert study.model_info["name"] == "scripted-student" and study.task_rows.count() == 3

    client = _client(_user("rita", "reviewer"))
    page = client.get(f"/studies/runs/{study.pk}/").content.decode()
    assert page.count('data-testid="curve-row"') == 3 and 'data-testid="study-chart"' in page and "<svg" in page
    assert "100.0%" in page and "33.3%" in page  # tests: every task by turn 1; none: the one solved at turn 0
    detail = client.get(f"/studies/runs/{study.pk}/tasks/12/").content.decode()
    assert detail.count('data-testid="study-turn"') == 2 * 3 - 1  # tests solved it at turn 1: one turn
    assert 'data-testid="rejected-hint"' in detail and 'data-testid="diff"' in detail
    assert HOSTILE not in detail and "&lt;script&gt;" in detail
    assert "Reference solution" not in detail  # a reviewer, and the study does not show it
    assert "Reference solution" in _client(trainer_user).get(f"/studies/runs/{study.pk}/tasks/12/").content.decode()

    lines = [json.loads(line) for line in b"".join(client.get(f"/studies/runs/{study.pk}/export.jsonl")
                                                   .streaming_content).decode().splitlines()]
    assert [line["type"] for line in lines] == ["study", "replay", "replay", "replay"]
    assert lines[0]["summary"]["summary"]["tests"]["error_reduction"] == 1.0 and lines[0]["settings"]["turns"] == 2
    assert lines[2]["task_id"] == 12 and [t["status"] for t in lines[2]["arms"]["hint"]] == ["failed", "failed"]


def test_live_dialogs_start_from_the_failed_attempt_and_join_the_curve(study):
    rita = _user("rita", "reviewer")
    with pytest.raises(NotAllowed):
        live.take_task(_user("nobody"), study)
    dialog = live.take_task(rita, study)
    conversation = dialog.conversation
    assert dialog.task.task_id == 11 and conversation.source == "mbpp:11" and conversation.max_feedback_turns == 2
    first = conversation.messages.get(role="assistant")
    assert first.turn == 1 and first.verdict["status"] == "failed" and "return None" in first.code
    assert live.take_task(rita, study) == dialog  # the open dialog comes back until it is done

    # two feedback turns given (as the chat stores them), then a third is refused before any model is asked
    parent = first
    for turn in (2, 3):
        asked = Message.objects.create(conversation=conversation, owner=rita, parent=parent, role="user",
                                       kind=Message.Kind.FEEDBACK, content="Read it again.")
        parent = Message.objects.create(conversation=conversation, owner=rita, parent=asked, role="assistant",
                                        kind=Message.Kind.REPAIR, content="no", turn=turn,
                                        verdict={"status": "passed" if turn == 3 else "failed"})
    Conversation.objects.filter(pk=conversation.pk).update(leaf=parent, turns=3, solved=True, first_success_turn=3)
    conversation.refresh_from_db()
    with pytest.raises(Invalid, match="allows 2 feedback turns"):
        user_turns.give_feedback(conversation, "One more try?")
    for attempt in (lambda: user_turns.send(conversation, "Just chatting"), lambda: user_turns.regenerate(parent)):
        with pytest.raises(Invalid, match="feedback turns only"):  # neither would be a feedback turn
            attempt()

    following = live.take_task(rita, study)  # the first is done (solved at study turn 2): the next failed task
    assert following.task.task_id == 12
    live.leave_dialog(rita, following)
    with pytest.raises(Conflict, match="every task"):
        live.take_task(rita, study)

    result = live.live_result(study)
    assert result["dialogs"] == 2 and result["solved_by_turn"] == [0, 0, 1] and result["error_reduction"] == 0.5
    # on the replay's scale: 1 of 3 at turn 0, then half of the 2 failures
    assert result["solved_rate_by_turn"] == [0.3333, 0.3333, 0.6667]
    page = _client(rita).get(f"/studies/runs/{study.pk}/").content.decode()
    assert 'data-kind="live"' in page and page.count('data-testid="live-row"') == 2
    lines = b"".join(_client(rita).get(f"/studies/runs/{study.pk}/export.jsonl").streaming_content).decode()
    live_lines = [json.loads(line) for line in lines.splitlines() if '"type": "live"' in line]
    assert [(line["task_id"], line["first_success_turn"]) for line in live_lines] == [(11, 2), (12, None)]
