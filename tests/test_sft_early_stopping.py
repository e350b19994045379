"""Early stopping for supervised rounds (SFT and distillation share the loop): the model answers
held-out tasks in the real sandbox every few steps, training stops when that stops improving, and
the best model, not the last, is sealed. A tiny random model never solves a task, so a later
validation is never better than the first: the round must stop and seal its starting weights."""
import json
import subprocess
import sys

import pytest

from engine.lm.tiny import build_tiny_model
from engine.sandbox import verify_many
from engine.selfplay.training_text import training_example
from engine.training.packing import TrainingText
from engine.training.sft import SFTConfig, TrainingError, train_sft
from engine.training.tasks import CodeTask
from tests.support import ROOT

pytestmark = pytest.mark.timeout(600)
EXAMPLES = [TrainingText(training_example(f"def sat(x: int, a={a}):\n    return x + a == {2 * a}",
                                          f"def sol(a={a}):\n    return a"), source=f"pair:{a}") for a in range(3, 30)]
VALIDATION = [CodeTask("511", "Write a function to add two numbers.", ["assert add(1, 2) == 3"],
                       reference="def add(a, b):\n    return a + b"),
              CodeTask("512", "Write a function to double a number.", ["assert double(2) == 4"],
                       reference="def double(x):\n    return 2 * x")]
CONFIG = SFTConfig(max_steps=20, batch_size=2, block_size=64, learning_rate=1e-3, warmup_steps=1, save_steps=100,
                   validate_every=2, patience=1, validation_tasks=2, validation_max_tokens=8)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return str(build_tiny_model(tmp_path_factory.mktemp("tiny")))


def _weights(folder):
    from safetensors.torch import load_file

    return load_file(f"{folder}/model.safetensors")


def test_a_round_that_does_not_improve_on_validation_stops_and_seals_its_best_model(tiny, tmp_path):
    import torch

    events = []
    result = train_sft(tiny, EXAMPLES, tmp_path / "r", CONFIG, progress=events.append,
                       validation=VALIDATION, verify=verify_many)
    assert result.stopped_early and result.steps == 2 and result.best_step == 0  # not the 20 asked
    assert [(p["step"], p["tasks"], p["solved"]) for p in result.validation] == [(0, 2, 0), (2, 2, 0)]
    assert [e["step"] for e in events if "validation/pass_rate" in e] == [0, 2]  # on the run's curve
    assert [e["step"] for e in events if "loss" in e] == [1, 2]  # and it did train two steps
    start, sealed = _weights(tiny), _weights(tmp_path / "r" / "model")
    shared = start.keys() & sealed.keys()
    assert shared and all(torch.equal(start[k].float(), sealed[k].float()) for k in shared)  # step 0's weights
    record = json.loads((tmp_path / "r" / "model" / "training.json").read_text())
    assert record["result"]["best_step"] == 0 and record["config"]["validate_every"] == 2
    assert not list((tmp_path / "r").glob("rollout-policy*"))  # no decoder copy left behind

    unvalidated = train_sft(tiny, EXAMPLES, tmp_path / "plain", SFTConfig(**{**CONFIG.as_dict(), "max_steps": 3}))
    assert unvalidated.steps == 3 and unvalidated.best_step is None  # no tasks given: no validation
    with pytest.raises(TrainingError, match="sandbox"):
        train_sft(tiny, EXAMPLES, tmp_path / "x", CONFIG, validation=VALIDATION)
    with pytest.raises(ValueError, match="patience"):
        SFTConfig(patience=0)


def test_the_command_line_validates_on_mbpp_validation_when_asked(tiny, tmp_path):
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps({"text": e.text}) + "\n" for e in EXAMPLES))
    done = subprocess.run([sys.executable, "-m", "engine.training", "--base", tiny, "--data", str(data),
                           "--out", str(tmp_path / "r"), "--max-steps", "6", "--batch-size", "2", "--block-size", "64",
                           "--validate-every", "2", "--patience", "1", "--validation-tasks", "3",
                           "--validation-max-tokens", "8"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["stopped_early"] and result["best_step"] == 0
    assert [(p["step"], p["tasks"]) for p in result["validation"]] == [(0, 3), (2, 3)]  # MBPP 511-513
