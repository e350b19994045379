"""An RL training round on real parts: a Celery model worker serving the packaged model (SmolLM2,
LoRA, sampled by llama.cpp from the policy's GGUF copy) runs GRPO whose reward is computed by a
verify worker in the sandbox, one batch per step; the worker is SIGKILLed after a sealed
checkpoint, the round is reaped and resumes from it, and the gate decides on the packaged model's
evaluations. The run page charts the reward, its parts and the KL. Early stopping runs on a tiny
random model: it is about the rule, not the model."""
import signal
import time
from pathlib import Path

import pytest
from django.test import Client

from tests import test_training_rounds as sft_rounds
from tests.support import require_llama_cpp, start_worker, stop_worker, user_with_roles
from tests.test_training_rounds import TINY_ROUND, finished, purge_stale_messages, round_state, trained_past, wait_for
from webapp.refusals import Invalid
from webapp.serving import versions
from webapp.training import rounds
from webapp.training.models import TrainingRun

# The model worker's fixtures (a tiny random model, a data folder), shared with the SFT rounds' tests.
tiny_model, worker_env, seeds_and_roles = sft_rounds.tiny_model, sft_rounds.worker_env, sft_rounds.seeds_and_roles
RL_ROUND = {**TINY_ROUND, "method": "rl", "rl_tasks": 4, "grounding": {"discriminator_weight": 0.1},
            "rl": {"max_steps": 6, "save_steps": 2, "num_generations": 2, "prompts_per_step": 1,
                   "max_completion_length": 12, "device": "cpu", "lora_r": 4,
                   "validate_every": 0}}  # early stopping in a round: its own test below


@pytest.fixture
def packaged_env(worker_env, settings):
    """The workers and this process serve the packaged default (AUTODIDACT_MODEL empty), and chat
    follows it: the round's v0 is the packaged model."""
    settings.AUTODIDACT_MODEL = ""
    versions.forget_active()
    return {**worker_env, "AUTODIDACT_MODEL": "", "AUTODIDACT_CHAT_MODEL": ""}


@pytest.mark.timeout(1200)  # three worker starts, a kill, a reap, a resumed round, two gate evaluations
@pytest.mark.django_db(transaction=True)
def test_an_rl_round_on_the_packaged_model_survives_a_kill_and_the_gate_decides(packaged_env, monkeypatch):
    require_llama_cpp()
    purge_stale_messages()
    verifier, _ = start_worker("verify-rl", "verify", "solo", packaged_env)
    gpu, output = start_worker("gpu-rl", "gpu", "solo", packaged_env)
    run = rounds.start_round(None, RL_ROUND)
    try:
        try:  # past the first sealed checkpoint (step 2)
            wait_for(lambda: trained_past(run.pk, 2), 400, "RL steps", lambda: round_state(run.pk, output))
        finally:
            stop_worker(gpu, signal.SIGKILL)
        killed = TrainingRun.objects.get(pk=run.pk)
        assert killed.dataset["rl_tasks"][0]["task_id"] == "mbpp:601" and killed.examples == 4
        assert {"reward", "kl", "grounding/pass_rate", "grounding/parse_rate",
            "discriminator/accuracy"} <= set(killed.rl_curve[-1])
        assert killed.progress["samples"] and "status" in killed.progress["samples"][0]
        monkeypatch.setattr(TrainingRun, "STALLED_AFTER_S", 1.0)
        time.sleep(1.5)
        assert rounds.reap_stalled() == 1
        monkeypatch.setattr(TrainingRun, "STALLED_AFTER_S", 90.0)
        rounds.resume_round(None, TrainingRun.objects.get(pk=run.pk))
        gpu, output = start_worker("gpu-rl-resume", "gpu", "solo", packaged_env)
        run = wait_for(lambda: finished(run.pk), 400, "the resumed round", lambda: round_state(run.pk, output))
    finally:
        stop_worker(gpu)
        stop_worker(verifier)
    assert run.status == "succeeded", run.error
    assert run.training["steps"] == 6 and "checkpoint-" in run.training["resumed_from"]
    assert run.training["sampler"] == "llama.cpp" and run.training["completion_tokens"] > 0
    assert "SmolLM2-135M-Instruct" in run.base_version.name
    assert run.eval_before["backend"] == run.eval_after["backend"] == "llama.cpp"
    assert run.decision and run.produced_version is not None  # promoted or rejected by the same gate as SFT
    published = Path(packaged_env["AUTODIDACT_DATA_DIR"]) / "models" / run.produced_version.checkpoint.removeprefix("store:")
    assert (published / "discriminator.pt").is_file()  # versioned with the model
    client = Client()
    client.force_login(user_with_roles("tom", "trainer"))
    page = client.get(f"/training/runs/{run.pk}/").content.decode()
    assert 'data-testid="reward-chart"' in page and 'data-testid="kl-chart"' in page
    assert "reward part: execution level (mean)" in page and "reward part: discriminator score (mean)" in page


@pytest.mark.timeout(600)
@pytest.mark.django_db(transaction=True)
def test_an_rl_round_that_no_validation_improves_keeps_its_start_and_ends_unpromoted(worker_env, settings, tmp_path):
    """Validated on MBPP validation tasks at the start and every 2 steps (rewarded on the verify
    queue, validated alike): the random policy answers nothing at either point, so patience 1
    stops it at step 2 with step 0 kept, and the round ends without a version or an evaluation after."""
    purge_stale_messages()
    settings.DATA_DIR = tmp_path / "data"
    verifier, _ = start_worker("verify-rl-stop", "verify", "solo", worker_env)
    try:
        config = {**RL_ROUND, "rl": {**RL_ROUND["rl"], "validate_every": 2, "patience": 1, "validation_tasks": 3}}
        run = rounds.run_round(rounds.start_round(None, config, enqueue=False).pk)
    finally:
        stop_worker(verifier)
    assert run.status == "succeeded", run.error
    assert [(p["step"], p["tasks"]) for p in run.training["validation"]] == [(0, 3), (2, 3)]
    assert run.training["steps"] == 2 and run.training["best_step"] == 0 and run.training["stopped_early"]
    assert [p["step"] for p in run.rl_curve if "validation/reward" in p] == [0, 2]
    assert "validation (MBPP 511-600, first 3, greedy): kept the model of step 0 (0 solved" in run.log
    assert run.decision.startswith("not promoted: early stopping kept the starting model")
    assert run.produced_version is None and not run.eval_after


@pytest.mark.django_db
def test_rl_tasks_come_from_mbpp_train_and_verified_puzzles_never_test_items():
    from webapp.puzzles.models import Attempt
    from webapp.training import training_data

    tasks = training_data.rl_tasks(("mbpp", "p3"))
    mbpp = [t for t in tasks if t["task_id"].startswith("mbpp:")]
    puzzles = [t for t in tasks if t.get("kind") == "puzzle"]
    assert len(mbpp) == 248 and all(601 <= int(t["task_id"][5:]) <= 974 and t["reference"] for t in mbpp)  # less MBPP+
    trained_on = {a.puzzle_id for a in Attempt.objects.training_pairs()}
    assert puzzles and {int(t["task_id"][7:]) for t in puzzles} <= trained_on  # the seeds' verified pairs
    assert all(t["sat"].lstrip().startswith("def sat") and t["reference"] for t in puzzles)
    with pytest.raises(Invalid, match="RL task sources must be among mbpp, p3, chat"):
        rounds.start_round(None, {**RL_ROUND, "rl_sources": ["mbpp-test"]}, enqueue=False)


@pytest.mark.django_db
def test_rl_tasks_take_verified_chat_repairs_and_never_a_pasted_test_task():
    from django.contrib.auth.models import User

    from engine.datasets.mbpp import load_mbpp
    from tests.support import BENCHMARK_DATA
    from tests.test_training_ledger import repaired_conversation
    from webapp.chat.models import Conversation
    from webapp.training import training_data

    ada = User.objects.create_user("ada")
    kept = repaired_conversation(ada, "user")
    pasted = repaired_conversation(ada, "user")  # labelled the user's own, but its text is MBPP test task 11
    task = load_mbpp(BENCHMARK_DATA)[11]
    Conversation.objects.filter(pk=pasted.conversation_id).update(problem=task.text, tests=task.tests)
    assert training_data.rl_tasks(("chat",)) == [
        {"task_id": f"chat:{kept.conversation_id}", "text": "Add two numbers.", "tests": ["assert add(1, 2) == 3"],
         "setup": "", "source": "user", "reference": "def add(a, b):\n    return a + b\n"}]
