"""engine/training on a tiny random model: packing keeps every token, a round writes a model
that loads and serves (full and LoRA), progress is reported, and checkpoints survive crashes:
a process SIGKILLed while training and saving leaves only whole checkpoints, and a rerun
resumes from the last one."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from engine.config import ConfigError
from engine.lm.generation import CancelToken, SamplingParams
from engine.lm.tiny import build_tiny_model
from engine.lm.transformers_backend import TransformersModel
from engine.selfplay.training_text import training_example
from engine.training.checkpoints import CheckpointDir, is_complete
from engine.training.packing import IGNORE, TrainingText, drop_long, pack, snapshot_hash
from engine.training.sft import SFTConfig, TrainingError, train_sft
from tests.support import ROOT, LineReader

PAIRS = [(f"def sat(x: int, a={a}):\n    return x + a == {2 * a}", f"def sol(a={a}):\n    return a")
         for a in range(3, 40)]
EXAMPLES = [TrainingText(training_example(sat, sol), source=f"pair:{i}") for i, (sat, sol) in enumerate(PAIRS)]
CHAT = TrainingText(messages=({"role": "user", "content": "Add two numbers."},
                              {"role": "assistant", "content": "```python\ndef add(a, b):\n    return a + b\n```"}))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return str(build_tiny_model(tmp_path_factory.mktemp("tiny")))


def test_packing_keeps_every_token_and_masks_only_padding(tiny):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny)
    examples = [*EXAMPLES[:5], CHAT]
    blocks = pack(examples, tokenizer, block_size=64, seed=1)
    expected = sum(len(tokenizer(e.render(tokenizer), add_special_tokens=False)["input_ids"]) + 1 for e in examples)
    assert sum(sum(b["attention_mask"]) for b in blocks) == expected
    assert all(len(b["input_ids"]) == len(b["labels"]) == 64 for b in blocks)
    last = blocks[-1]
    assert all((label == IGNORE) == (mask == 0) for label, mask in zip(last["labels"], last["attention_mask"]))
    assert "<|im_start|>assistant" in CHAT.render(tokenizer)  # chat examples use the chat template
    assert pack(examples, tokenizer, 64, seed=1) == blocks and pack(examples, tokenizer, 64, seed=2) != blocks
    assert snapshot_hash(examples) == snapshot_hash(list(reversed(examples))) != snapshot_hash(examples[:-1])
    with pytest.raises(ValueError):
        pack([], tokenizer, 64)
    long = TrainingText("def f(x: int):\n    return x == " + " + ".join(["1"] * 200) + "\n")
    kept, dropped = drop_long([*examples, long], tokenizer, max_tokens=200)
    assert kept == examples and dropped == 1
    assert drop_long([long], tokenizer, 0) == ([long], 0)


def test_bad_settings_are_refused_with_a_reason():
    with pytest.raises(ValueError, match="method"):
        SFTConfig(method="qlora")
    with pytest.raises(ValueError, match="block_size"):
        SFTConfig(block_size=4)
    with pytest.raises(ValueError, match="unknown training settings: lr"):
        SFTConfig.from_dict({"lr": 1})
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, bf16"):
        SFTConfig(precision="fp16")


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_training_runs_in_the_precision_asked_and_says_so_and_saves_float32_weights(tiny, tmp_path, precision):
    """bf16 on a CPU is mixed precision: products under autocast, the weights (and so the sealed
    checkpoint) stay float32; the precision a round ran in is in its result and training.json."""
    import torch

    config = SFTConfig(max_steps=3, batch_size=2, block_size=64, learning_rate=1e-3, warmup_steps=1,
                       save_steps=100, precision=precision)
    result = train_sft(tiny, EXAMPLES, tmp_path / "round", config)
    assert result.precision == precision and result.steps == 3 and result.final_loss < 20
    record = json.loads((tmp_path / "round" / "model" / "training.json").read_text())
    assert record["result"]["precision"] == precision and record["config"]["precision"] == precision
    from safetensors import safe_open

    with safe_open(str(tmp_path / "round" / "model" / "model.safetensors"), "pt") as weights:
        names = list(weights.keys())  # a safetensors file is not iterable
        assert names and {weights.get_tensor(name).dtype for name in names} == {torch.float32}


def test_auto_precision_is_bf16_only_where_the_device_multiplies_bf16_natively():
    import torch

    from engine.training.precision import native_bf16, training_precision

    natively = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    assert native_bf16("cpu") == natively
    assert training_precision("auto", "cpu") == ("bf16" if natively else "fp32")
    assert training_precision("fp32", "cpu") == "fp32" and training_precision("bf16", "cpu") == "bf16"
    with pytest.raises(ValueError, match="precision"):
        training_precision("int8", "cpu")


@pytest.mark.parametrize("method", ["full", "lora"])
def test_a_round_writes_a_model_that_loads_and_serves(tiny, tmp_path, method):
    events = []
    config = SFTConfig(method=method, max_steps=6, batch_size=2, block_size=64, save_steps=3,
                       learning_rate=1e-3, warmup_steps=1)
    result = train_sft(tiny, [*EXAMPLES, CHAT], tmp_path / "round", config, progress=events.append)
    assert result.steps == 6 and len(result.loss_curve) == 6 and result.final_loss is not None
    assert [e["step"] for e in events] == [1, 2, 3, 4, 5, 6] and events[-1]["max_steps"] == 6
    assert all(e["tokens_per_s"] > 0 and e["loss"] > 0 for e in events)
    assert result.dataset_hash == snapshot_hash([*EXAMPLES, CHAT]) and result.examples == len(EXAMPLES) + 1
    folder = tmp_path / "round" / "model"
    assert is_complete(folder) and (folder / "config.json").is_file() and not (folder / "adapter_config.json").exists()
    assert json.loads((folder / "training.json").read_text())["config"]["method"] == method
    served = TransformersModel.load(str(folder))
    completion = served.complete("def f(x: int):", SamplingParams(max_new_tokens=4))
    assert completion.tokens >= 1
    # Training changed the weights, and a repeated request returns the sealed result untouched.
    base = TransformersModel.load(tiny)
    changed = [name for name, value in served.model.state_dict().items()
               if not value.equal(base.model.state_dict()[name])]
    assert changed
    again = train_sft(tiny, EXAMPLES, tmp_path / "round", config)
    assert again.dataset_hash == result.dataset_hash and again.steps == 6


def test_cancel_stops_between_steps_and_no_model_is_sealed(tiny, tmp_path):
    cancel = CancelToken()
    seen = []

    def progress(event):
        seen.append(event["step"])
        if event["step"] == 2:
            cancel.cancel()

    result = train_sft(tiny, EXAMPLES, tmp_path / "r", SFTConfig(max_steps=50, batch_size=2, block_size=64),
                       progress=progress, cancel=cancel)
    assert result.cancelled and result.steps == 2 and seen == [1, 2]
    assert not (tmp_path / "r" / "model").exists()


def test_a_time_budget_ends_training_at_a_step_and_seals_that_model(tiny, tmp_path):
    """max_minutes: the first step that ends past the budget is the last, and its model is kept
    (unlike a cancel), so two methods can be compared on the same wall-clock time."""
    budget_s = 1.5
    started = time.perf_counter()
    etas = []
    result = train_sft(tiny, EXAMPLES, tmp_path / "r",
                       SFTConfig(max_steps=100_000, batch_size=2, block_size=64, max_minutes=budget_s / 60),
                       progress=lambda event: etas.append(event["eta_s"]))
    assert not result.cancelled and 1 <= result.steps < 100_000
    assert etas and max(etas) < budget_s + 60  # the page's ETA is the budget's, not 100,000 steps
    assert time.perf_counter() - started < budget_s + 60  # stopped soon after the budget, not at max_steps
    assert (tmp_path / "r" / "model" / "config.json").is_file()
    with pytest.raises(ConfigError, match="max_minutes"):
        SFTConfig(max_minutes=-1)


def test_unloadable_base_model_is_a_clear_error(tmp_path):
    with pytest.raises(TrainingError, match="could not load the base model"):
        train_sft(str(tmp_path / "nowhere"), EXAMPLES, tmp_path / "r", SFTConfig(max_steps=1))


def test_half_written_checkpoints_are_never_loaded(tmp_path):
    folders = CheckpointDir(tmp_path, keep=2)
    folders.clear_staging()
    for step in (2, 4):
        (folders.staging / f"checkpoint-{step}").mkdir()
        (folders.staging / f"checkpoint-{step}" / "model.safetensors").write_bytes(b"whole")
        folders.seal_staged(step)
    half = folders.staging / "checkpoint-6"  # a crash in the middle of writing step 6
    half.mkdir()
    (half / "model.safetensors").write_bytes(b"ha")
    torn = folders.checkpoints / "checkpoint-8"  # a folder without its seal, by any route
    torn.mkdir()
    assert folders.latest() == folders.checkpoints / "checkpoint-4"
    folders.clear_staging()
    assert not half.exists()
    for step in (6, 8):
        (folders.staging / f"checkpoint-{step}").mkdir(exist_ok=True)
        folders.seal_staged(step)
    assert [p.name for p in folders.completed()] == ["checkpoint-6", "checkpoint-8"]  # older pruned


def _train_command(tiny, data, out, steps):
    return [sys.executable, "-m", "engine.training", "--base", tiny, "--data", str(data), "--out", str(out),
            "--max-steps", str(steps), "--batch-size", "2", "--block-size", "64", "--save-steps", "1",
            "--learning-rate", "0.001", "--warmup-steps", "1"]


def test_killed_mid_training_resumes_from_the_last_whole_checkpoint(tiny, tmp_path):
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps({"text": e.text}) + "\n" for e in EXAMPLES))
    out = tmp_path / "round"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for pause in (0.1, 0.3):  # two kills: the second run resumes and is killed again
        latest = CheckpointDir(out).latest()
        # Wait for three steps past wherever this run starts: a loaded machine may have let the
        # first run save more steps than planned before its kill landed.
        kill_after = (int(latest.name.split("-")[1]) if latest else 0) + 3
        proc = subprocess.Popen(_train_command(tiny, data, out, 40), cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        reader = LineReader(proc.stderr)
        reader.wait_for(f'"step": {kill_after},', timeout=180)
        time.sleep(pause)  # somewhere inside the next step or its save; saving happens after every step
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        folders = CheckpointDir(out)
        assert folders.completed(), "at least one whole checkpoint survived"
        for checkpoint in folders.completed():
            assert is_complete(checkpoint) and (checkpoint / "trainer_state.json").is_file()
        assert not (out / "model").exists()
    resumed_from = CheckpointDir(out).latest()
    done = subprocess.run(_train_command(tiny, data, out, 40), cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["resumed_from"] == str(resumed_from) and result["steps"] == 40
    first_step = json.loads(next(line for line in done.stderr.splitlines() if line.startswith("{")))["step"]
    assert first_step == int(resumed_from.name.split("-")[1]) + 1  # no step trained twice
    assert TransformersModel.load(str(out / "model")).complete("x", SamplingParams(max_new_tokens=2)).tokens >= 1
