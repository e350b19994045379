"""The real default model (SmolLM2-135M-Instruct) on a small self-play budget produces a verified
pair: its own attempts at P3 training puzzles, cut from its completions, verified in the
sandbox, kept and turned into a training example. The model is weak: with seeds 0 to 2, three
runs of the 20 or 30 easiest P3 train problems × 8 attempts at T = 0.8 gave one passing attempt
each, and a fourth none. So the budget is the 30 easiest problems and the sampling is seeded;
what is asserted is that the real path, from the model's tokens to a training pair, yields one."""
import pytest

from engine.lm.loading import load_model
from engine.sandbox import verify_many
from engine.selfplay.p3 import load_p3, one_per_problem
from engine.selfplay.pipeline import SelfPlayConfig, solve, verify_attempts
from engine.selfplay.training_text import is_training_example, shortest_distinct, training_example
from tests.support import BENCHMARK_DATA


@pytest.mark.timeout(600)
def test_the_default_model_produces_a_verified_pair_on_a_small_budget():
    train = [p for p in one_per_problem(load_p3(BENCHMARK_DATA / "p3")) if p.split == "train"]
    easiest = sorted(train, key=lambda p: min((len(s) for s in p.solutions), default=999))[:30]
    model = load_model("", "transformers")
    config = SelfPlayConfig(attempts=8, solving_temperature=0.8, solving_tokens=64, seed=0)
    sats = [p.sat for p in easiest]
    attempts, timing = solve(model, sats, config, batch=0)
    verify_attempts(sats, attempts, lambda jobs: verify_many(jobs))
    assert timing.tokens > 0 and sum(a["solution"] is not None for tries in attempts for a in tries) >= 120
    pairs = [(sat, solution) for sat, tries in zip(sats, attempts)
             for solution in shortest_distinct([a["solution"] for a in tries if a.get("status") == "passed"], 8)]
    assert pairs, [[(a.get("status"), a["text"][:60]) for a in tries] for tries in attempts]
    assert all(is_training_example(training_example(sat, solution)) for sat, solution in pairs)
