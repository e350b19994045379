"""Teacher traces and distill rounds in the product, on real parts: a trace run on a Celery worker
whose teacher is the packaged Qwen GGUF behind a local llama.cpp server; traces browsed, reviewed
(a rejected one is never exported or trained on) and exported; a run that fails midway resumes
without asking the teacher again for what it stored; a tiny distill round through Celery with the
gate, its loss parts charted."""
import re

import pytest
from django.test import Client

from engine.distill.traces import REASONING_REQUEST
from engine.lm.generation import Completion
from tests import test_training_rounds as sft_rounds
from tests.support import start_worker, stop_worker, user_with_roles
from tests.test_training_rounds import TINY_ROUND, finished, purge_stale_messages, round_state, wait_for
from webapp.distill import trace_runs
from webapp.distill.models import Trace, TraceRun
from webapp.refusals import Conflict, NotAllowed
from webapp.training import rounds

tiny_model, worker_env, seeds_and_roles = sft_rounds.tiny_model, sft_rounds.worker_env, sft_rounds.seeds_and_roles


@pytest.fixture(autouse=True)
def own_data_dir(settings, tmp_path):
    """A teacher cache of its own: answers cached by another test must not answer this one's."""
    settings.DATA_DIR = str(tmp_path)


class ReferenceTeacher:
    """Answers each MBPP task with its reference solution (or a wrong one for the tasks in `wrong`),
    behind a line of reasoning; `fail_after` prompts, it raises (a teacher that went away)."""

    name = "reference teacher"

    def __init__(self, wrong=(), fail_after=None, reasoning="Loop over the input and build the answer."):
        from django.conf import settings

        from engine.datasets.mbpp import load_mbpp

        self.tasks = load_mbpp(settings.AUTODIDACT_BENCHMARK_DATA)
        self.wrong, self.fail_after, self.reasoning = set(wrong), fail_after, reasoning
        self.asked = []

    def sample_many(self, prompts, n, params, cancel=None):
        answers = []
        for prompt in prompts:
            if self.fail_after is not None and len(self.asked) >= self.fail_after:
                raise ConnectionError("the teacher went away")
            task = next(t for t in self.tasks.values() if t.text.strip() and t.text.strip() in prompt[0]["content"])
            self.asked.append(task.task_id)
            code = "def nothing():\n    return None" if task.task_id in self.wrong else task.code
            answers.append([Completion(f"Reasoning: {self.reasoning}\n\n```python\n{code}\n```", 40, "eos")
                            for _ in range(n)])
        return answers


def traced(limit=4, wrong=(), reasoning="Loop over the input and build the answer.") -> TraceRun:
    run = trace_runs.start_trace_run(None, {"samples": 1, "batch_tasks": 2}, ["mbpp"], limit, enqueue=False)
    return trace_runs.execute(run.pk, teacher=ReferenceTeacher(wrong, reasoning=reasoning))


@pytest.mark.django_db
def test_traces_are_browsed_reviewed_and_only_trainable_ones_exported():
    run = traced(limit=4, wrong={609}, reasoning="<script>alert(1)</script> then return the list.")
    assert run.status == "succeeded" and run.tasks_done == 4
    traces = list(run.traces.order_by("task_id"))
    assert [t.task_id for t in traces] == ["601", "609", "613", "617"]  # MBPP+ holds 602-608: never traced
    assert [t.kept for t in traces] == [True, False, True, True] and traces[1].status == "error"  # NameError
    assert traces[0].prompt[0]["content"].endswith(REASONING_REQUEST) and traces[0].source == "mbpp:601"
    assert run.summary["kept"] == 3 and run.summary["asked"] == 4 and run.summary["tasks_with_trace"] == 3

    reviewer, visitor = Client(), Client()
    reviewer.force_login(user_with_roles("rita", "reviewer"))
    visitor.force_login(user_with_roles("vic"))
    page = reviewer.get("/traces/").content.decode()
    assert page.count('data-testid="trace-row"') == 3  # kept ones by default
    assert reviewer.get("/traces/?show=all").content.decode().count('data-testid="trace-row"') == 4
    detail = reviewer.get(f"/traces/{traces[0].pk}/").content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in detail and "<script>alert(1)" not in detail
    assert 'data-testid="review-form"' in detail

    # Reviewing: only reviewers, only kept traces; a rejected trace leaves the export and the data.
    assert visitor.post(f"/traces/{traces[0].pk}/review/", {"review": "rejected"}).status_code == 403
    refused = reviewer.post(f"/traces/{traces[1].pk}/review/", {"review": "accepted"})
    assert refused.status_code == 409 and "Only kept traces" in refused.content.decode()
    assert reviewer.post(f"/traces/{traces[2].pk}/review/", {"review": "rejected", "note": "wrong idea"}).status_code == 302
    assert Trace.objects.get(pk=traces[2].pk).review == "rejected"
    export = b"".join(reviewer.get("/traces/export.jsonl").streaming_content).decode()
    import json

    rows = [json.loads(line) for line in export.splitlines()]
    assert [row["source"] for row in rows] == ["mbpp:601", "mbpp:617"]
    user, answer = rows[0]["messages"]
    assert user["role"] == "user" and not user["content"].endswith(REASONING_REQUEST)
    assert answer["content"].startswith("<script>alert(1)</script> then return the list.")  # JSON: data, not a page
    assert re.search(r"```python\n.*def ", answer["content"], re.DOTALL)
    from webapp.training import training_data

    examples, ids = training_data.distill_examples()
    assert ids == [traces[0].pk, traces[3].pk] and examples[0].source == f"trace:{traces[0].pk}"


@pytest.mark.django_db
def test_a_run_that_failed_midway_resumes_without_asking_the_teacher_again():
    run = trace_runs.start_trace_run(None, {"samples": 1, "batch_tasks": 2}, ["mbpp"], 6, enqueue=False)
    first = ReferenceTeacher(fail_after=3)
    run = trace_runs.execute(run.pk, teacher=first)
    assert run.status == "failed" and "went away" in run.error
    assert sorted(run.traces.values_list("task_id", flat=True)) == ["601", "609"]  # the first batch was stored
    with pytest.raises(NotAllowed):
        trace_runs.resume_trace_run(user_with_roles("rita", "reviewer"), run)
    trace_runs.resume_trace_run(None, run)
    second = ReferenceTeacher()
    run = trace_runs.execute(run.pk, teacher=second)
    assert run.status == "succeeded" and run.tasks_done == 6 and run.summary["asked"] == 6
    assert second.asked == [613, 617, 621, 627]  # the stored tasks are not asked again
    with pytest.raises(Conflict):
        trace_runs.resume_trace_run(None, run)


class DownTeacher(ReferenceTeacher):
    """Its requests for the tasks in `down` fail after their retries, as an endpoint's do."""

    def __init__(self, down=()):
        super().__init__()
        self.down = set(down)

    def sample_many(self, prompts, n, params, cancel=None):
        answers = super().sample_many(prompts, n, params, cancel)
        return [[Completion("", 0, "error:http-5xx")] * n if task_id in self.down else row
                for task_id, row in zip(self.asked[-len(prompts):], answers)]


@pytest.mark.django_db
def test_requests_the_teacher_did_not_answer_fail_the_run_and_are_asked_again_on_resume():
    run = trace_runs.start_trace_run(None, {"samples": 2, "batch_tasks": 2}, ["mbpp"], 4, enqueue=False)
    run = trace_runs.execute(run.pk, teacher=DownTeacher(down={609, 617}))
    assert run.status == "failed" and "did not answer 4 of 8 requests" in run.error
    assert run.summary["counts"] == {"passed": 4, "teacher error": 4} and run.summary["kept"] == 2
    shown = Client()
    shown.force_login(user_with_roles("vic"))
    assert "the request failed (http-5xx)" in shown.get(
        f"/traces/{run.traces.filter(task_id='609').first().pk}/").content.decode()
    trace_runs.resume_trace_run(None, run)
    again = ReferenceTeacher()
    run = trace_runs.execute(run.pk, teacher=again)
    assert again.asked == [609, 617]  # only what went unanswered
    assert run.status == "succeeded" and run.summary["counts"] == {"passed": 8} and run.summary["kept"] == 4


@pytest.mark.django_db
def test_only_trainers_start_trace_runs_and_bad_settings_are_refused():
    from webapp.refusals import Invalid

    with pytest.raises(NotAllowed):
        trace_runs.start_trace_run(user_with_roles("rita", "reviewer"), {}, ["mbpp"], 2, enqueue=False)
    with pytest.raises(Invalid, match="samples must be between 1 and 64"):
        trace_runs.start_trace_run(None, {"samples": 0}, ["mbpp"], 2, enqueue=False)
    with pytest.raises(Invalid, match="sources must be among mbpp, p3"):
        trace_runs.start_trace_run(None, {}, ["mbpp-test"], 2, enqueue=False)
    client = Client()
    client.force_login(user_with_roles("tom", "trainer"))
    page = client.post("/traces/", {"sources": ["mbpp"], "samples": "many"})
    assert page.status_code == 400 and "samples must be a number" in page.content.decode().lower()
    assert not TraceRun.objects.exists()


@pytest.mark.timeout(600)  # the local teacher server loads a 0.5B model on a busy CPU
@pytest.mark.django_db(transaction=True)
def test_a_trace_run_on_a_worker_asks_the_packaged_teacher_behind_a_local_server(worker_env):
    purge_stale_messages()
    proc, output = start_worker("gpu-traces", "gpu", "solo", worker_env)
    try:
        run = trace_runs.start_trace_run(None, {"samples": 2, "max_tokens": 160, "batch_tasks": 2}, ["mbpp"], 2)
        run = wait_for(lambda: (lambda r: r if r.status in ("succeeded", "failed") else None)(
            TraceRun.objects.get(pk=run.pk)), 500, "the trace run",
            lambda: f"{TraceRun.objects.get(pk=run.pk).__dict__}\n" + "".join(output.lines[-40:]))
    finally:
        stop_worker(proc)
    assert run.status == "succeeded", run.error
    assert "qwen2.5-coder" in run.teacher_info["name"].lower() and run.teacher_info["endpoint"] is False
    traces = list(run.traces.all())
    assert len(traces) == 4 and {t.task_id for t in traces} == {"601", "609"}
    assert all(t.reply and t.tokens > 0 for t in traces)
    assert all(t.kept == (t.status == "passed") or t.status == "passed" for t in traces)
    assert run.summary["asked"] == 4 and sum(run.summary["counts"].values()) == 4


@pytest.mark.timeout(600)
@pytest.mark.django_db(transaction=True)
def test_a_distill_round_learns_kept_traces_through_celery_and_the_gate_decides(worker_env):
    purge_stale_messages()
    kept = traced(limit=6).summary["kept"]
    assert kept == 6
    proc, output = start_worker("gpu-distill", "gpu", "solo", worker_env)
    try:
        settings_ = {**TINY_ROUND, "method": "distill", "distill": {"structure_weight": 0.5},
                     "sft": {**TINY_ROUND["sft"], "block_size": 128}}
        run = rounds.start_round(None, settings_)
        run = wait_for(lambda: finished(run.pk), 500, "the distill round", lambda: round_state(run.pk, output))
    finally:
        stop_worker(proc)
    assert run.status == "succeeded", run.error
    assert run.examples == 6 and len(run.dataset["traces"]) == 6 and run.training["steps"] == 4
    assert run.config["distill"] == {"structure_weight": 0.5}
    parts = run.rl_curve[-1]
    assert {"ce", "structure", "loss"} <= set(parts) and parts["structure"] > 0
    assert run.decision and run.produced_version is not None  # the same gate as every round
    client = Client()
    client.force_login(user_with_roles("tom", "trainer"))
    page = client.get(f"/training/runs/{run.pk}/").content.decode()
    assert 'data-testid="loss-parts-chart"' in page and "Teacher traces" in page


class AddingTeacher:
    """Answers every task with a right `add` (the chat task below) behind a line of reasoning."""

    name = "adding teacher"

    def sample_many(self, prompts, n, params, cancel=None):
        reply = "Reasoning: add the two numbers.\n\n```python\ndef add(a, b):\n    return a + b\n```"
        return [[Completion(reply, 30, "eos") for _ in range(n)] for _ in prompts]


@pytest.mark.django_db
def test_verified_chat_tasks_are_traced_and_a_resume_keeps_the_tasks_it_started_with():
    from django.contrib.auth.models import User

    from engine.datasets.mbpp import load_mbpp
    from tests.support import BENCHMARK_DATA
    from tests.test_training_ledger import repaired_conversation
    from webapp.chat.models import Conversation
    from webapp.refusals import Invalid

    with pytest.raises(Invalid, match="nothing to trace"):
        trace_runs.start_trace_run(None, {}, ["chat"], enqueue=False)
    ada = User.objects.create_user("ada")
    chat = repaired_conversation(ada, "user").conversation_id
    pasted = repaired_conversation(ada, "user").conversation_id  # its text is MBPP test task 11: never traced
    task = load_mbpp(BENCHMARK_DATA)[11]
    Conversation.objects.filter(pk=pasted).update(problem=task.text, tests=task.tests)
    run = trace_runs.start_trace_run(None, {"samples": 1, "batch_tasks": 2}, ["chat"], enqueue=False)
    assert run.tasks_total == 1 and run.config["chat_tasks"] == [f"chat:{chat}"]
    repaired_conversation(ada, "user")  # verified after the run started: not in this run
    run = trace_runs.execute(run.pk, teacher=AddingTeacher())
    assert run.status == "succeeded", run.error
    [trace] = Trace.objects.filter(run=run)
    assert (trace.task_id, trace.source, trace.kept) == (f"chat:{chat}", "user", True)
    assert "add the two numbers" in trace.reasoning
