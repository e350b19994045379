"""The round gate can fail: evaluated as a round evaluates (full precision on llama.cpp, P3 and the
code validation benchmark), the packaged model scores above zero on the code check, and a
deliberately damaged checkpoint of it (its attention weights scrambled) is rejected by `decide`
for losing more than the margin there, even where its P3 score is not worse."""
import pytest
import torch

from engine.evaluate.promotion import decide
from engine.lm.gguf_export import export_checked
from engine.lm.model_source import resolve_model_source
from engine.training.sft import load_for_training
from tests.support import require_llama_cpp
from webapp.training.rounds import RoundConfig, evaluate_version

# The first six MBPP validation tasks: greedy SmolLM2 (f16, instruct prompt) solves 514 and 516.
CONFIG = RoundConfig(p3_eval={"samples": 1, "subset": 1, "max_tokens": 8, "temperature": 0.0},
                     code_problems=6, code_prompt="instruct", metric_k=1)


@pytest.mark.timeout(900)
def test_a_damaged_checkpoint_is_rejected_on_the_code_check(tmp_path, settings):
    require_llama_cpp()
    settings.DATA_DIR = tmp_path / "data"
    base = evaluate_version("", CONFIG)
    assert base["backend"] == "llama.cpp" and base["quantization"] == "f16"  # never the Q4_1 file
    assert base["code"]["benchmark"] == "mbpp-validation" and base["code"]["problems"] == 6
    assert base["code"]["pass_at_1"] > 0, base["code"]["per_problem"]  # the check can fail

    model, tokenizer = load_for_training("", "cpu")
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.mul_(-1.0)
    damaged = tmp_path / "damaged"
    model.save_pretrained(damaged)
    tokenizer.save_pretrained(damaged)
    assert export_checked(damaged, resolve_model_source("").llama_file)["passed"]  # served as it is
    after = evaluate_version(str(damaged), CONFIG)
    assert after["backend"] == "llama.cpp" and after["code"]["pass_at_1"] < base["code"]["pass_at_1"]

    p3_equal = {**after["p3"], "pass_at_k": base["p3"]["pass_at_k"]}  # even with P3 no worse
    decision = decide(base["p3"], p3_equal, 1, CONFIG.margin, base["code"], after["code"], CONFIG.code_margin)
    assert not decision.promote and "MBPP (validation) pass@1" in decision.reason
    assert "lost more than" in decision.reason
