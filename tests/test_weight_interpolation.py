"""Weight-space interpolation (engine/training/interpolation.py): a round can publish
start + α·(trained − start), and the command line makes any α from a sealed model and its start.
Checked on a tiny model trained for real: the same training at α = 1 and α = 0.5 (same seed, same
data) must seal weights on one line through the start, tied embeddings moved once."""
import json
import subprocess
import sys

import pytest

from engine.lm.tiny import build_tiny_model
from engine.selfplay.training_text import training_example
from engine.training.packing import TrainingText
from engine.training.sft import SFTConfig, train_sft
from tests.support import ROOT

pytestmark = pytest.mark.timeout(600)
EXAMPLES = [TrainingText(training_example(f"def sat(x: int, a={a}):\n    return x + a == {2 * a}",
                                          f"def sol(a={a}):\n    return a"), source=f"pair:{a}") for a in range(3, 20)]
CONFIG = SFTConfig(max_steps=4, batch_size=2, block_size=64, learning_rate=1e-2, warmup_steps=1, save_steps=100)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return str(build_tiny_model(tmp_path_factory.mktemp("tiny")))


def _weights(folder):
    from safetensors.torch import load_file

    return load_file(f"{folder}/model.safetensors")


def test_a_round_at_half_interpolation_seals_the_midpoint_of_start_and_trained(tiny, tmp_path):
    import torch

    train_sft(tiny, EXAMPLES, tmp_path / "full", CONFIG)
    train_sft(tiny, EXAMPLES, tmp_path / "half", SFTConfig(**{**CONFIG.as_dict(), "interpolation": 0.5}))
    start, full, half = _weights(tiny), _weights(tmp_path / "full" / "model"), _weights(tmp_path / "half" / "model")
    assert start.keys() == full.keys() == half.keys()
    moved = [name for name in start if not torch.equal(start[name], full[name])]
    assert "model.embed_tokens.weight" in moved and len(moved) > 10  # training moved the weights, embeddings too
    for name in start:
        midpoint = (start[name].float() + full[name].float()) / 2
        assert torch.allclose(half[name].float(), midpoint, atol=1e-6), name  # tied weights not moved twice
    record = json.loads((tmp_path / "half" / "model" / "training.json").read_text())
    assert record["config"]["interpolation"] == 0.5
    with pytest.raises(ValueError, match="interpolation"):
        SFTConfig(interpolation=0)
    with pytest.raises(ValueError, match="interpolation"):
        SFTConfig(interpolation=1.5)


def test_the_command_line_makes_any_point_of_the_line_from_a_sealed_model(tiny, tmp_path):
    import torch

    train_sft(tiny, EXAMPLES, tmp_path / "full", CONFIG)
    trained = tmp_path / "full" / "model"

    def interpolate(alpha, out):
        return subprocess.run([sys.executable, "-m", "engine.training", "interpolate", "--base", tiny, "--model",
                               str(trained), "--alpha", str(alpha), "--out", str(out)],
                              cwd=ROOT, capture_output=True, text=True, timeout=600)

    done = interpolate(0.25, tmp_path / "quarter")
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads(done.stdout.strip().splitlines()[-1])
    assert record["interpolation"] == 0.25 and record["tensors_moved"] > 10
    start, full, quarter = _weights(tiny), _weights(trained), _weights(tmp_path / "quarter")
    for name in start:
        assert torch.allclose(quarter[name], start[name] + 0.25 * (full[name] - start[name]), atol=1e-6), name
    # Past the trained model too: from a version published at α = 0.5, α = 2 gives back the trained one.
    assert interpolate(2, tmp_path / "past").returncode == 0
    past = _weights(tmp_path / "past")
    assert all(torch.allclose(past[n], start[n] + 2 * (full[n] - start[n]), atol=1e-5) for n in start)
    refused = interpolate(0.5, tmp_path / "quarter")
    assert refused.returncode == 2 and "not empty" in refused.stderr
    assert interpolate(0, tmp_path / "zero").returncode == 2
