"""GRPO's samples drawn by llama.cpp (engine/training/rl_rollout.py): the policy written each step
is the LoRA policy, adapters included (its weights equal the merged model's, and llama.cpp's logits
on its GGUF agree with the peft model's, not with the base's), and an RL round on the packaged
model samples and validates through it end to end, seals its model and leaves no policy file behind."""
import numpy as np
import pytest
import torch

from engine.lm import llama_cpp_backend
from engine.lm.gguf_export import agreement, write_gguf
from engine.lm.tiny import build_tiny_model
from engine.sandbox import verify_many
from engine.training.checkpoints import is_complete
from engine.training.rl import RLConfig, train_rl
from engine.training.rl_rollout import POLICY_FILE, choose_sampler, policy_weights, rollout_like
from engine.training.sft import load_for_training
from engine.training.tasks import CodeTask
from tests.support import require_llama_cpp

pytestmark = pytest.mark.timeout(600)


def lora_policy(model, seed: int = 0, scale: float = 0.05):
    """`model` with LoRA adapters whose B matrices are not zero, as after some training (A and B drawn
    from `seed`, so two calls give the same policy)."""
    from peft import LoraConfig, get_peft_model

    policy = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", lora_dropout=0.0))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in policy.named_parameters():
            if "lora_A" in name or "lora_B" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * scale)
    return policy.eval()


def test_the_written_policy_is_the_merged_lora_model(tmp_path):
    from transformers import AutoModelForCausalLM

    folder = build_tiny_model(tmp_path / "tiny")
    original = {name: t.numpy() for name, t in AutoModelForCausalLM.from_pretrained(folder).state_dict().items()}
    policy = lora_policy(AutoModelForCausalLM.from_pretrained(folder))
    before = {name: t.clone() for name, t in policy.state_dict().items()}
    weights = policy_weights(policy)
    merged = lora_policy(AutoModelForCausalLM.from_pretrained(folder)).merge_and_unload()
    expected = {name: tensor.numpy() for name, tensor in merged.state_dict().items()}
    assert set(weights) == set(expected) == set(original)
    assert any(not np.array_equal(expected[name], original[name]) for name in expected), \
        "the adapters changed no weight: the test would pass on the base weights"
    for name, value in expected.items():
        np.testing.assert_allclose(weights[name], value, atol=1e-6, err_msg=name)
    # out of place: the trained model's own weights are untouched
    assert all(torch.equal(tensor, before[name]) for name, tensor in policy.state_dict().items())


def test_llama_cpp_serves_the_policy_not_its_base(tmp_path):
    require_llama_cpp()
    like = rollout_like("")
    model, tokenizer = load_for_training("", "cpu")
    policy = lora_policy(model)
    out = write_gguf(policy_weights(policy), model.config.to_dict(), like, tmp_path / "policy.gguf")
    served = agreement(policy, tokenizer, out)
    assert served.passed, served.as_dict()
    with policy.disable_adapter():
        base_side = agreement(policy, tokenizer, out)
    # the adapters move the logits by far more than f16 rounding does
    assert base_side.max_abs_logit_diff > 5 * served.max_abs_logit_diff, (base_side.as_dict(), served.as_dict())


def test_the_sampler_choice():
    assert choose_sampler("transformers", "", "cpu") == "transformers"
    assert choose_sampler("auto", "", "cuda") == "transformers"
    if llama_cpp_backend.available():
        assert choose_sampler("auto", "", "cpu") == "llama.cpp"
    with pytest.raises(ValueError, match="sampler must be one of"):
        choose_sampler("vllm", "", "cpu")


def test_the_llama_cpp_sampler_needs_a_gguf_policy(tmp_path):
    folder = str(build_tiny_model(tmp_path / "tiny"))  # built from a config: no GGUF to copy
    assert choose_sampler("auto", folder, "cpu") == "transformers"
    with pytest.raises(ValueError, match="descends from a GGUF"):
        choose_sampler("llama.cpp", folder, "cpu")


def test_a_round_on_the_packaged_model_samples_with_llama_cpp(tmp_path):
    require_llama_cpp()
    tasks = [CodeTask("601", "Write a function to add two numbers.", ["assert add(1, 2) == 3"],
                      reference="def add(a, b):\n    return a + b"),
             CodeTask("602", "Write a function to double a number.", ["assert double(2) == 4"],
                      reference="def double(x):\n    return 2 * x")]
    config = RLConfig(method="lora", max_steps=2, num_generations=2, prompts_per_step=2, max_completion_length=24,
                      save_steps=1, device="cpu", lora_r=4, sampler="llama.cpp", learning_rate=1e-4,
                      validate_every=1, patience=5)
    validation = [CodeTask("603", "Write a function to square a number.", ["assert square(3) == 9"])]
    seen = []
    result = train_rl("", tasks, tmp_path / "round", config, verify_many, progress=seen.append, validation=validation)
    assert result.sampler == "llama.cpp" and result.steps == 2
    # early stopping's greedy answers come from the same copy: steps 0, 1 and 2 validated
    assert [point["step"] for point in result.validation] == [0, 1, 2]
    assert all(point["tasks"] == 1 for point in result.validation)
    assert result.completion_tokens > 0 and result.sampling_seconds > 0 and result.export_seconds > 0
    assert all(0 < point["completions/mean_length"] <= 25 for point in seen if "loss" in point)  # 24 + the end token
    assert is_complete(tmp_path / "round" / "model")
    assert not (tmp_path / "round" / POLICY_FILE).exists()
