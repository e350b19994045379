"""GRPO rounds (engine/training/rl.py) on a tiny random model built from the packaged model's
tokenizer, with the real sandbox as the reward: steps run, the reward's parts are logged, a
checkpoint is sealed, a stopped round resumes from it, and the result is a loadable checkpoint."""
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
