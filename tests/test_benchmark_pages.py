"""The Benchmarks pages and `manage.py benchmark` on PostgreSQL: starting a run (who may, bad
settings), a run stored task by task and resumed without redoing finished tasks, the versions ×
benchmarks table with its interval and chart, the drill-down to a task's samples with hostile
model text escaped, and JSON/JSONL export. Runs execute in the test process (`execute`) with a
model that replays known answers, so verdicts are known; the real model path is covered by
tests/test_benchmark_suite.py's command-line test."""
import io
import json
import re

import pytest
from django.core.management import CommandError, call_command

from engine.evaluate.suite.runner import TASKS_PER_REQUEST
from tests.support import signed_in_client as _client
from tests.support import user_with_roles as _user
from tests.test_benchmark_suite import ReplayModel, humaneval_reply
from webapp.evaluation import benchmark_runs
from webapp.evaluation.models import BenchmarkRun
from webapp.refusals import Invalid, NotAllowed
from webapp.serving import versions

pytestmark = pytest.mark.django_db
HOSTILE = "<script>alert('x')</script>"


@pytest.fixture(autouse=True)
def fresh_active_version():
    versions.forget_active()
    yield
    versions.forget_active()


@pytest.fixture
def trainer_user():
    return _user("tom", "trainer")


def _replay(run, correct=2):
    from django.conf import settings

    from engine.evaluate.suite.registry import get_benchmark

    suite = get_benchmark("humaneval", settings.AUTODIDACT_BENCHMARK_DATA)
    answer = humaneval_reply(suite, {t.task_id for t in suite.tasks()[:correct]})
    return ReplayModel(lambda prompt, i: answer(prompt, i) + HOSTILE)


def test_who_may_start_and_bad_settings(trainer_user):
    reviewer = _user("rita", "reviewer")
    with pytest.raises(NotAllowed):
        benchmark_runs.start_run(reviewer, "humaneval", enqueue=False)
    with pytest.raises(Invalid) as error:
        benchmark_runs.start_run(trainer_user, "humaneval", settings_={"n": 3, "temperature": 0.0}, enqueue=False)
    assert "temperature 0" in error.value.reason and "n" in error.value.fields
    with pytest.raises(Invalid):
        benchmark_runs.start_run(trainer_user, "no-such-benchmark", enqueue=False)
    page = _client(trainer_user).post("/benchmarks/", {"benchmark": "humaneval", "n": "lots"})
    assert page.status_code == 400 and "n must be a number" in page.content.decode().lower()
    assert _client(reviewer).post("/benchmarks/", {"benchmark": "humaneval"}).status_code == 403
    assert not BenchmarkRun.objects.exists()


def test_the_start_form_sets_every_sampling_setting_it_records(trainer_user):
    client = _client(trainer_user)
    form = {"benchmark": "p3-validation", "n": "4", "temperature": "0.6", "top_k": "0", "top_p": "0.9",
            "max_tokens": "64", "seed": "7", "ks": "1, 2", "limit": "3"}
    assert client.get("/benchmarks/").content.decode().count('name="top_k"') == 1
    assert client.post("/benchmarks/", form).status_code == 302
    config = BenchmarkRun.objects.get().config
    assert {key: config[key] for key in ("n", "temperature", "top_k", "top_p", "max_tokens", "seed", "ks", "limit")} \
        == {"n": 4, "temperature": 0.6, "top_k": 0, "top_p": 0.9, "max_tokens": 64, "seed": 7, "ks": [1, 2], "limit": 3}
    for ks, message in (("1, ten", "k must be whole numbers"), ("0", "every k of pass@k must be at least 1")):
        page = client.post("/benchmarks/", {**form, "ks": ks})
        assert page.status_code == 400 and message in page.content.decode().lower()
    assert BenchmarkRun.objects.count() == 1


def test_a_packaged_model_runs_beside_the_versions_and_gets_its_own_row(trainer_user):
    """A larger packaged model (fetched by `make install`) evaluated to compare the versions against."""
    qwen = "qwen2.5-coder-0.5b-instruct"
    with pytest.raises(Invalid, match="not both"):
        benchmark_runs.start_run(trainer_user, "humaneval", versions.active_version(), packaged=qwen, enqueue=False)
    with pytest.raises(Invalid, match="unknown packaged model 'gpt-9'"):
        benchmark_runs.start_run(trainer_user, "humaneval", packaged="gpt-9", enqueue=False)
    client = _client(trainer_user)
    form = client.get("/benchmarks/").content.decode()
    assert f'value="packaged:{qwen}"' in form and "Qwen2.5-Coder-0.5B-Instruct (Q4_K_M GGUF)" in form
    assert client.post("/benchmarks/", {"benchmark": "humaneval", "version": f"packaged:{qwen}", "limit": "3"}) \
        .status_code == 302
    packaged = BenchmarkRun.objects.get()
    assert packaged.packaged == qwen and packaged.version is None
    ours = benchmark_runs.start_run(trainer_user, "humaneval", settings_={"limit": 3}, enqueue=False)
    benchmark_runs.execute(packaged.pk, model=_replay(packaged, correct=3))
    benchmark_runs.execute(ours.pk, model=_replay(ours, correct=1))
    packaged.refresh_from_db()
    assert packaged.model_info["packaged"] == qwen and packaged.summary["solved"] == 3

    index = client.get("/benchmarks/").content.decode()
    labels = re.findall(r'<th scope="row" class="break">([^<]+)</th>', index)
    assert labels == [ours.version.name, "Qwen2.5-Coder-0.5B-Instruct (Q4_K_M GGUF) (packaged)"]
    assert "100.0%" in index and "33.3%" in index
    page = client.get(f"/benchmarks/runs/{packaged.pk}/").content.decode()
    assert "Qwen2.5-Coder-0.5B-Instruct (Q4_K_M GGUF) (packaged)" in page
    out = io.StringIO()
    with pytest.raises(CommandError, match="Unknown packaged model"):
        call_command("benchmark", "humaneval", "--packaged", "gpt-9", stdout=out)


def test_a_run_is_stored_shown_exported_and_escaped(trainer_user):
    run = benchmark_runs.start_run(trainer_user, "humaneval", settings_={"limit": 3}, enqueue=False)
    assert run.tasks_total == 3 and run.version == versions.active_version()
    benchmark_runs.execute(run.pk, model=_replay(run))
    run.refresh_from_db()
    assert run.status == "succeeded" and run.tasks_done == 3 and run.task_rows.count() == 3
    assert run.summary["pass_at_k"] == {"1": round(2 / 3, 4)} and run.summary["solved"] == 2
    assert run.model_info["backend"] == "replay" and run.config["prompt"] == "instruct"

    client = _client(trainer_user)
    index = client.get("/benchmarks/").content.decode()
    assert 'data-testid="result-cell"' in index and "66.7%" in index and "n=1" in index
    assert 'data-testid="benchmarks-chart"' in index
    page = client.get(f"/benchmarks/runs/{run.pk}/").content.decode()
    assert page.count('data-testid="task-row"') == 3 and "HumanEval/2" in page and "66.7%" in page
    # structure beside pass@1: the replayed answers are the reference solutions for the two it solves
    assert run.summary["structure"]["syntax_match"] > 0.6 and 'data-testid="syntax-match"' in page
    assert 'data-testid="structure-cell"' in index
    detail = client.get(f"/benchmarks/runs/{run.pk}/tasks/2/").content.decode()
    assert "HumanEval/2" in detail and 'data-status="failed"' in detail
    assert HOSTILE not in detail and "&lt;script&gt;alert(" in detail
    assert client.get(f"/benchmarks/runs/{run.pk}/tasks/9/").status_code == 404

    lines = b"".join(client.get(f"/benchmarks/runs/{run.pk}/export.jsonl").streaming_content).decode().splitlines()
    assert [json.loads(line)["task_id"] for line in lines] == ["HumanEval/0", "HumanEval/1", "HumanEval/2"]
    document = json.loads(client.get(f"/benchmarks/runs/{run.pk}/export.json").content)
    assert document["summary"]["pass_at_k"] == run.summary["pass_at_k"] and len(document["rows"]) == 3
    assert document["rows"][0]["samples"][0]["status"] == "passed" and document["model"]["quantization"] == "none"


def test_a_failed_run_resumes_without_redoing_finished_tasks(trainer_user):
    # a request's tasks and two more: this model dies on the second request
    run = benchmark_runs.start_run(trainer_user, "humaneval", settings_={"limit": TASKS_PER_REQUEST + 2},
                                   enqueue=False)
    first = _replay(run)
    original = first.sample_many

    def dies_on_second_chunk(prompts, n, params, cancel=None):
        if first.prompts:
            raise RuntimeError("worker lost")
        return original(prompts, n, params, cancel)

    first.sample_many = dies_on_second_chunk
    benchmark_runs.execute(run.pk, model=first)
    run.refresh_from_db()
    assert run.status == "failed" and "worker lost" in run.error and run.task_rows.count() == TASKS_PER_REQUEST
    resumed = benchmark_runs.resume_run(trainer_user, run)
    assert resumed.status == "queued"
    second = _replay(run)
    benchmark_runs.execute(run.pk, model=second)
    run.refresh_from_db()
    assert run.status == "succeeded" and run.task_rows.count() == TASKS_PER_REQUEST + 2 and len(second.prompts) == 2


def test_cancelling_a_queued_run_and_the_command(trainer_user, capsys):
    run = benchmark_runs.start_run(trainer_user, "humaneval", settings_={"limit": 2}, enqueue=False)
    benchmark_runs.cancel_run(trainer_user, run)
    run.refresh_from_db()
    assert run.status == "cancelled" and benchmark_runs.execute(run.pk) is None
    call_command("benchmark", "--list")
    listed = capsys.readouterr().out
    assert "humaneval" in listed and "p3" in listed


def test_a_promoted_version_gets_its_test_benchmarks_queued(db):
    from engine.config import ConfigError
    from webapp.serving.models import ModelVersion
    from webapp.training import rounds
    from webapp.training.models import TrainingRun

    run = TrainingRun.objects.create(status="running")
    version = ModelVersion.objects.create(name="v9 · round", status="active")
    rounds._report(run, version, rounds.RoundConfig(report_benchmarks="humaneval-plus, mbpp-plus"))
    queued = BenchmarkRun.objects.filter(version=version).order_by("pk")
    assert [(r.benchmark, r.status) for r in queued] == [("humaneval-plus", "queued"), ("mbpp-plus", "queued")]
    assert "queued benchmark run" in TrainingRun.objects.get(pk=run.pk).log
    with pytest.raises(ConfigError, match="report_benchmarks must be test benchmarks"):
        rounds.RoundConfig(report_benchmarks="mbpp-validation")  # never a set the gate selects on
