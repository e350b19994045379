"""GRPO rounds (engine/training/rl.py) on a tiny random model built from the packaged model's
tokenizer, with the real sandbox as the reward: steps run, the reward's parts are logged, a
checkpoint is sealed, a stopped round resumes from it, and the result is a loadable checkpoint."""
from dataclasses import replace

import pytest

from engine.lm.generation import CancelToken
from engine.lm.tiny import build_tiny_model
from engine.sandbox import verify_many
from engine.training.checkpoints import is_complete
from engine.training.discriminator import Discriminator
from engine.training.grounding import GroundingConfig
from engine.training.rl import RLConfig, train_rl
from engine.training.tasks import CodeTask

pytestmark = pytest.mark.timeout(600)
TASKS = [CodeTask("601", "Write a function to add two numbers.", ["assert add(1, 2) == 3", "assert add(0, 0) == 0"],
                reference="def add(a, b):\n    return a + b"),
         CodeTask("602", "Write a function to double a number.", ["assert double(2) == 4"],
                reference="def double(x):\n    return 2 * x"),
         CodeTask("p3:1", "", [], reference="def sol():\n    return 4", kind="puzzle",
                sat="def sat(x: int):\n    return x * 3 == 12")]
WITH_DISCRIMINATOR = GroundingConfig(discriminator_weight=0.2)
CONFIG = RLConfig(method="lora", max_steps=3, num_generations=2, prompts_per_step=3, max_completion_length=12,
                  save_steps=1, device="cpu", lora_r=4)


def test_a_tiny_grpo_round_logs_rewards_stops_and_resumes(tmp_path):
    base = str(build_tiny_model(tmp_path / "tiny"))
    cancel, seen = CancelToken(), []

    def stop_at_the_second(update):
        seen.append(update)
        if update["step"] == 2:
            cancel.cancel()  # step 2 is not saved: the round resumes from step 1's sealed checkpoint

    first = train_rl(base, TASKS, tmp_path / "round", CONFIG, verify_many, WITH_DISCRIMINATOR,
                     progress=stop_at_the_second, cancel=cancel)
    assert first.cancelled and first.steps == 2 and not (tmp_path / "round" / "model").exists()
    assert {"reward", "kl", "grounding/parse_rate", "grounding/pass_rate", "discriminator/accuracy"} <= set(seen[0])
    assert Discriminator.load(tmp_path / "round" / "discriminator.pt").steps == 2  # saved every step, for a resume
    assert 0.0 <= seen[0]["reward"] <= 1.0 and seen[0]["grounding/pass_rate"] == 0.0  # random weights pass nothing
    assert [p.name for p in (tmp_path / "round" / "checkpoints").iterdir() if is_complete(p)] == ["checkpoint-1"]

    second = train_rl(base, TASKS, tmp_path / "round", CONFIG, verify_many, WITH_DISCRIMINATOR)
    assert not second.cancelled and second.steps == 3 and second.resumed_from.endswith("checkpoint-1")
    assert [point["step"] for point in second.curve] == [2, 3] and second.completion_tokens > 0
    assert is_complete(tmp_path / "round" / "model")
    # resumed, not restarted: it keeps its 2 steps (saved every step, ahead of the policy's checkpoint),
    # then trains on the redone step 2 and on step 3
    assert Discriminator.load(tmp_path / "round" / "model" / "discriminator.pt").steps == 4
    from transformers import AutoModelForCausalLM

    assert AutoModelForCausalLM.from_pretrained(tmp_path / "round" / "model").num_parameters() > 0


def test_a_steps_passes_each_hold_one_prompts_group_and_it_still_makes_one_update(tmp_path):
    """Memory: a forward/backward pass over all of a step's answers held ~20 GB on the default
    model and ran a 23 GB machine out; each pass now takes one prompt's group, the groups accumulated."""
    import torch

    base = str(build_tiny_model(tmp_path / "tiny"))
    batches = []

    def record(module, args, kwargs, output):
        if type(module).__name__.endswith("ForCausalLM") and not type(module).__name__.startswith("Peft"):
            ids = kwargs.get("input_ids", args[0] if args else None)
            batches.append((torch.is_grad_enabled(), ids.shape[0]))

    hook = torch.nn.modules.module.register_module_forward_hook(record, with_kwargs=True)
    try:
        result = train_rl(base, TASKS, tmp_path / "round", replace(CONFIG, max_steps=1),
                          verify_many)
    finally:
        hook.remove()
    trained = [size for grad, size in batches if grad]
    assert result.steps == 1 and len(result.curve) == 1
    assert trained and max(trained) == CONFIG.num_generations  # 2 answers a pass, not the step's 6
    assert sum(trained) == CONFIG.num_generations * CONFIG.prompts_per_step  # every answer learned from once


def test_the_early_stopping_rule():
    from engine.training.early_stopping import EarlyStopping, ValidationPoint

    rule = EarlyStopping(patience=2)
    assert rule.observe(ValidationPoint(0, 0.0, 0.30, 0, 10))
    assert rule.observe(ValidationPoint(10, 0.0, 0.35, 0, 10))  # same pass rate, higher reward: better
    assert not rule.observe(ValidationPoint(20, 0.0, 0.35, 0, 10)) and not rule.should_stop()  # a tie is no gain
    assert rule.observe(ValidationPoint(30, 0.1, 0.20, 1, 10)) and rule.best.step == 30  # pass rate comes first
    assert not rule.observe(ValidationPoint(40, 0.1, 0.19, 1, 10)) and not rule.should_stop()
    assert not rule.observe(ValidationPoint(50, 0.0, 0.50, 0, 10)) and rule.should_stop()
    resumed = EarlyStopping(2, rule.as_list()[:4])  # a round resumed at step 30 has the points before it
    assert resumed.best.step == 30 and not resumed.should_stop()


def test_a_round_that_does_not_improve_on_validation_stops_early(tmp_path):
    """Random weights answer nothing on the validation tasks: the validation at step 2 is no better
    than step 0's, so with patience 1 the round stops there, keeping step 0's policy."""
    base = str(build_tiny_model(tmp_path / "tiny"))
    config = RLConfig(**{**CONFIG.as_dict(), "max_steps": 6, "validate_every": 2, "patience": 1})
    events = []
    result = train_rl(base, TASKS, tmp_path / "round", config, verify_many, progress=events.append,
                      validation=TASKS[:2])
    assert result.stopped_early and result.steps == 2 and result.best_step == 0
    assert [(p["step"], p["tasks"]) for p in result.validation] == [(0, 2), (2, 2)]
    assert [e["step"] for e in events if "validation/reward" in e] == [0, 2]  # on the run's curve too
    assert sorted(p.name for p in (tmp_path / "round").glob("best-*.pt")) == ["best-0.pt"]


def test_the_best_validated_weights_are_restored_and_survive_a_resume(tmp_path):
    """The callback alone, on a real model, generation and sandbox: weights changed after the best
    validation are put back, from the file a resumed round also reads."""
    import torch
    from transformers import TrainerControl, TrainerState

    from engine.training.early_stopping import validation_callback
    from engine.training.sft import load_for_training

    model, tokenizer = load_for_training(str(build_tiny_model(tmp_path / "tiny")), "cpu")
    for param in model.parameters():
        param.requires_grad_(False)
    head = model.lm_head.weight.requires_grad_(True)
    start = head.detach().clone()
    points = []
    callback = validation_callback(tmp_path, TASKS[:2], verify_many, GroundingConfig(), every=1, patience=1,
                                   max_new_tokens=8, report=points.append)
    state, control = TrainerState(), TrainerControl()
    callback.on_train_begin(None, state, control, model=model, processing_class=tokenizer)
    with torch.no_grad():
        head.add_(0.5)  # "training" that does not help
    state.global_step = 1
    callback.on_step_end(None, state, control, model=model, processing_class=tokenizer)
    assert [p.step for p in points] == [0, 1] and control.should_training_stop
    assert callback.restore_best(model) == 0 and torch.equal(head, start)

    with torch.no_grad():
        head.add_(0.5)
    resumed = validation_callback(tmp_path, TASKS[:2], verify_many, GroundingConfig(), every=1, patience=1,
                                  max_new_tokens=8, report=points.append, resumed_at=0)
    assert resumed.stopping.best.step == 0 and [p.step for p in resumed.stopping.history] == [0]
    assert resumed.restore_best(model) == 0 and torch.equal(head, start)
