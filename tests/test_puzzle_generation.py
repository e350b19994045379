"""Self-play generation runs through real Celery workers (a model worker serving a tiny random
model, a verify worker with the sandbox) on PostgreSQL and Redis: a run completes with counts
that add up, can be cancelled, survives a killed model worker by resuming, and only trainers
start runs. Also the management commands and what may reach training data."""
import io
import json
import signal
import time

import pytest
from django.contrib.auth.models import Group, User
from django.core.exceptions import PermissionDenied
from django.core.management import call_command
from django.db import connection

from engine.lm.tiny import build_tiny_model
from engine.selfplay import filters
from tests.support import BENCHMARK_DATA, at_once, start_worker, stop_worker
from webapp.puzzles import generation_runs
from webapp.puzzles.models import Attempt, GenerationBatch, GenerationRun, Puzzle, Review
from webapp.puzzles.reviews import add_review

pytestmark = pytest.mark.django_db(transaction=True)
SMALL = {"batches": 2, "puzzles_per_prompt": 3, "attempts": 2, "generation_tokens": 16, "solving_tokens": 8,
         "context_tokens": 500}


@pytest.fixture(scope="module")
def worker_env(django_db_setup, django_db_blocker, tmp_path_factory):
    with django_db_blocker.unblock():
        db = connection.settings_dict
        database_url = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    return {"DATABASE_URL": database_url, "AUTODIDACT_MODEL": str(build_tiny_model(tmp_path_factory.mktemp("tiny"))),
            "AUTODIDACT_PRELOAD_MODEL": "1"}


@pytest.fixture(scope="module")
def verify_worker(worker_env):
    proc = start_worker("verify-gen", "verify", "solo", worker_env)[0]
    yield
    stop_worker(proc)


class ModelWorkers:
    """Model workers started by a test (and stopped after it); `kill` is what a crash looks like."""

    def __init__(self, env):
        self.env, self.procs = env, []

    def start(self, name="gpu-gen"):
        self.procs.append(start_worker(f"{name}{len(self.procs)}", "gpu", "solo", self.env)[0])

    def kill(self):
        stop_worker(self.procs.pop(), signal.SIGKILL)

    def stop_all(self):
        while self.procs:
            stop_worker(self.procs.pop())


@pytest.fixture
def gpu_worker(worker_env, verify_worker):
    workers = ModelWorkers(worker_env)
    workers.start()
    yield workers
    workers.stop_all()


@pytest.fixture(autouse=True)
def groups_and_seeds(db):
    """What migrations add; an earlier transactional test's flush removed it."""
    from webapp.accounts.roles import ROLE_GROUPS
    from webapp.puzzles.catalogue import import_seeds

    for name in ROLE_GROUPS:
        Group.objects.get_or_create(name=name)
    import_seeds()


@pytest.fixture
def trainer(db):
    user = User.objects.create_user("tess", password="x")
    user.groups.add(Group.objects.get(name="trainer"))
    return user


def wait_for_run(run_id: int, statuses=("succeeded", "failed", "cancelled"), timeout=120.0) -> GenerationRun:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = GenerationRun.objects.get(pk=run_id)
        if run.status in statuses:
            return run
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} is still {GenerationRun.objects.get(pk=run_id).status}")


def assert_counts_add_up(run: GenerationRun):
    counts = run.counts
    assert counts["generated"] == run.batches * run.config["puzzles_per_prompt"]
    assert counts["generated"] == counts["accepted"] + sum(counts[f"rejected_{f}"] for f in filters.FILTERS)
    made = Puzzle.objects.filter(generation_run=run)
    assert made.count() <= counts["accepted"]
    assert counts["attempts"] == Attempt.objects.filter(generation_run=run).count()


def test_a_run_goes_through_every_stage_on_the_workers(gpu_worker, trainer):
    run = generation_runs.start_run(trainer, SMALL)
    generation_runs.enqueue(run)
    run = wait_for_run(run.pk)
    assert run.status == "succeeded", run.error
    assert run.batches_done == 2 and set(GenerationBatch.objects.filter(run=run).values_list("stage", flat=True)) == {"done"}
    assert_counts_add_up(run)
    assert set(run.timings) == {"generate", "filter", "solve", "verify"} and run.timings["generate"]["tokens"] > 0
    assert run.model_name and run.started_at and run.finished_at and run.fraction == 1.0
    for puzzle in Puzzle.objects.filter(generation_run=run):
        assert puzzle.source == "generated" and puzzle.split == "train" and puzzle.sampling["solving"]["attempts"] == 2
        assert all(a.style == "completion" and a.model_name for a in puzzle.attempts.all())


def test_only_trainers_start_runs_and_one_runs_at_a_time(trainer):
    reviewer = User.objects.create_user("rita", password="x")
    reviewer.groups.add(Group.objects.get(name="reviewer"))
    with pytest.raises(PermissionDenied):
        generation_runs.start_run(reviewer, SMALL)
    with pytest.raises(ValueError, match="attempts must be at least 1"):
        generation_runs.start_run(trainer, {**SMALL, "attempts": 0})
    first = generation_runs.start_run(trainer, SMALL)  # not enqueued: it stays queued
    with pytest.raises(generation_runs.RunRefused, match=f"run {first.pk} is still queued"):
        generation_runs.start_run(trainer, SMALL)
    with pytest.raises(PermissionDenied):
        generation_runs.cancel_run(reviewer, first)
    generation_runs.cancel_run(trainer, first)
    first.refresh_from_db()
    assert first.status == "cancelled"


def test_concurrent_starts_queue_one_run_and_refuse_the_rest(trainer):
    outcomes = at_once(lambda: generation_runs.start_run(trainer, SMALL).pk, generation_runs.RunRefused)
    started = [o for o in outcomes if isinstance(o, int)]
    assert len(started) == 1 and GenerationRun.objects.count() == 1, outcomes
    assert all(f"run {started[0]} is still queued" in o for o in outcomes if isinstance(o, str))


def test_a_cancelled_run_stops_between_steps(gpu_worker, trainer):
    run = generation_runs.start_run(trainer, {**SMALL, "batches": 50})
    generation_runs.enqueue(run)
    wait_for_run(run.pk, ("running",))
    generation_runs.cancel_run(trainer, run)
    run = wait_for_run(run.pk, timeout=60)
    assert run.status == "cancelled" and run.batches_done < 50


def test_a_killed_model_worker_loses_at_most_one_batch_and_the_run_resumes(gpu_worker, trainer, monkeypatch):
    run = generation_runs.start_run(trainer, {**SMALL, "batches": 4, "generation_tokens": 48})
    generation_runs.enqueue(run)
    deadline = time.monotonic() + 90
    while not (GenerationRun.objects.get(pk=run.pk).batches_done >= 1
               and GenerationRun.objects.get(pk=run.pk).stage in ("generate", "solve")):
        assert time.monotonic() < deadline, "the run never reached a model step after its first batch"
        time.sleep(0.05)
    gpu_worker.kill()  # mid-run, during a step on the model's queue
    run.refresh_from_db()
    done_before = run.batches_done
    assert run.status == "running" and done_before < 4
    with pytest.raises(generation_runs.RunRefused, match="still going"):
        generation_runs.resume_run(trainer, run)
    monkeypatch.setattr(GenerationRun, "STALLED_AFTER_S", 1.0)  # instead of a minute without heartbeats
    time.sleep(2.5)
    run.refresh_from_db()
    assert run.is_stalled()
    run = generation_runs.resume_run(trainer, run)
    assert run.status == "queued"
    generation_runs.enqueue(run)
    gpu_worker.start("gpu-again")  # the step waited in the queue for a model worker
    run = wait_for_run(run.pk)
    assert run.status == "succeeded", run.error
    assert run.batches_done == 4
    assert_counts_add_up(run)
    fingerprints = list(Puzzle.objects.filter(generation_run=run).values_list("fingerprint", flat=True))
    assert len(fingerprints) == len(set(fingerprints))


def test_commands_import_p3_idempotently_and_export_only_trainable_pairs(trainer, tmp_path):
    out = io.StringIO()
    call_command("import_p3", str(BENCHMARK_DATA / "p3"), stdout=out)
    assert "imported 1715 puzzles" in out.getvalue()
    out = io.StringIO()
    call_command("import_p3", str(BENCHMARK_DATA / "p3"), stdout=out)
    assert "imported 0 puzzles, skipped 1715" in out.getvalue()
    assert Puzzle.objects.filter(source="p3-test").values("name").distinct().count() > 0
    seeds = Puzzle.objects.filter(source="seed")
    assert seeds.count() >= 30 and all(p.status == "solved" for p in seeds)

    # A test-split puzzle with a verified solution still never reaches the export; nor do
    # rejected or flagged ones.
    test_puzzle = Puzzle.objects.filter(source="p3-test").first()
    Puzzle.objects.filter(pk=test_puzzle.pk).update(status="solved")
    Attempt.objects.create(puzzle=test_puzzle, code="def sol(): return 1", status="passed", kept=True)
    rejected, flagged = seeds[0], seeds[1]
    reviewer = User.objects.create_user("rev", password="x", is_staff=True)
    add_review(reviewer, rejected, "reject", "unclear")
    add_review(reviewer, flagged, "flag")
    path = tmp_path / "pairs.jsonl"
    call_command("export_dataset", "--format", "jsonl", "--output", str(path), stderr=io.StringIO())
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    names = {r["name"] for r in rows}
    assert len(rows) == seeds.count() - 2 and test_puzzle.name not in names
    assert rejected.name not in names and flagged.name not in names
    assert all(r["split"] != "test" and r["text"].endswith("assert f(g())\n") for r in rows)
    assert Review.objects.count() == 2
    with pytest.raises(Exception, match="evaluation only"):
        call_command("export_dataset", "--source", "p3-test", stderr=io.StringIO())
