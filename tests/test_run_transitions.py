"""Run status changes are conditional: a cancel (or a reaper) that lands between a worker's read
and its write wins, for every run kind. The races are made deterministic by doing the cancel
inside the step, right after its read, instead of by timing."""
import pytest

from tests.support import user_with_roles
from webapp.evaluation.models import BenchmarkRun
from webapp.puzzles import generation_runs
from webapp.puzzles.models import GenerationBatch, GenerationRun
from webapp.training import rounds
from webapp.training.models import TrainingRun

pytestmark = pytest.mark.django_db

SMALL = {"batches": 3, "puzzles_per_prompt": 3, "attempts": 2, "generation_tokens": 16, "solving_tokens": 8}


def never_load():
    raise AssertionError("a cancelled run went on to load the model")


@pytest.mark.parametrize("where", ["before its first step", "between batches"])
def test_a_cancel_between_a_steps_read_and_its_claim_wins(where, monkeypatch):
    trainer = user_with_roles("trainer", "trainer")
    run = generation_runs.start_run(trainer, SMALL)
    index = 0
    if where == "between batches":  # batch 0 done, the run running, the next step about to start
        GenerationBatch.objects.create(run=run, index=0, stage="done")
        GenerationRun.objects.filter(pk=run.pk).update(status="running", stage="verify")
        index = 1
    real = GenerationBatch.objects.get_or_create

    def cancel_then_get(*args, **kwargs):  # runs after run_step has read the run as still due
        generation_runs.cancel_run(trainer, GenerationRun.objects.get(pk=run.pk))
        return real(*args, **kwargs)

    monkeypatch.setattr(GenerationBatch.objects, "get_or_create", cancel_then_get)
    assert generation_runs.run_step(run.pk, index, "generate", never_load) is False
    run.refresh_from_db()
    assert (run.status, run.error) == ("cancelled", "")


@pytest.mark.parametrize("kind", [GenerationRun, TrainingRun, BenchmarkRun])
def test_a_final_status_is_final_and_only_ended_runs_reopen(kind):
    fields = {"benchmark": "p3"} if kind is BenchmarkRun else {}
    run = kind.objects.create(**fields)
    rows = kind.objects.filter(pk=run.pk)
    assert kind.move(run.pk, kind.Status.RUNNING)
    assert not kind.reopen(run.pk)  # still going: nothing to reopen
    assert kind.finish(rows, kind.Status.CANCELLED) == 1
    assert kind.finish(rows, kind.Status.SUCCEEDED) == 0  # a worker finishing late does not overwrite it
    assert not kind.move(run.pk, kind.Status.RUNNING)
    assert rows.get().status == "cancelled"
    assert kind.reopen(run.pk) and rows.get().status == "queued"
    rows.update(cancel_requested=True)
    assert not kind.move(run.pk, kind.Status.RUNNING)  # a cancel asked for: no step starts


def test_a_round_asked_to_cancel_stops_at_its_next_status_change():
    run = TrainingRun.objects.create(status="running")
    TrainingRun.objects.filter(pk=run.pk).update(cancel_requested=True)
    with pytest.raises(rounds.RoundEnded):
        rounds._update(run, stage="eval-before", status=TrainingRun.Status.EVALUATING)
    run.refresh_from_db()
    assert (run.status, run.stage) == ("cancelled", "")


def test_every_kind_of_run_is_sent_again_when_the_embedded_job_starts():
    """A new kind of run without an entry would stay queued for good after an embedded restart."""
    from django.apps import apps

    from webapp.core.requeue import KINDS, _attribute
    from webapp.core.runs import BackgroundRun

    kinds = {model for model in apps.get_models() if issubclass(model, BackgroundRun)}
    assert {_attribute(model) for model, _ in KINDS} == kinds
