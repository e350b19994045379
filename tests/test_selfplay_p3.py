"""P3 loading: every instance with its split; reference solutions verify; the test split cannot
reach prompts or training data."""
import pytest

from engine.sandbox import verify_many
from engine.selfplay.p3 import TestSplitLeak, is_validation_problem, load_p3, training_safe
from tests.support import BENCHMARK_DATA

P3 = BENCHMARK_DATA / "p3"


@pytest.fixture(scope="module")
def puzzles():
    return load_p3(P3)


def test_instances_and_problem_splits(puzzles):
    assert len(puzzles) == 1715
    problems = {split: {p.problem for p in puzzles if p.split == split}
                for split in ("train", "validation", "test", "other")}
    # P3's 155 train problems: a fixed fifth of them (by a hash of the name) is held out for validation
    assert len(problems["train"]) == 121 and len(problems["validation"]) == 34 and len(problems["test"]) == 228
    assert not problems["train"] & problems["test"] and not problems["train"] & problems["validation"]
    assert all(is_validation_problem(name) for name in problems["validation"])
    assert not any(is_validation_problem(name) for name in problems["train"])
    study = next(p for p in puzzles if p.name == "Study_1:0")
    assert study.answer_type == "str" and study.sat.startswith("def sat(s: str)")
    assert study.solutions[0].startswith("def sol():\n    return")


def test_reference_solutions_of_train_puzzles_verify(puzzles):
    train = [p for p in puzzles if p.split == "train" and p.solutions][:40]
    jobs = [{"id": p.name, "kind": "puzzle", "sat": p.sat, "sol": p.solutions[0]} for p in train]
    verdicts = list(verify_many(jobs))
    assert len(verdicts) == 40 and all(v.passed for v in verdicts), [v for v in verdicts if not v.passed][:2]


def test_the_test_split_never_reaches_training_data(puzzles):
    train = [p for p in puzzles if p.split == "train"]
    assert training_safe(train) == train
    for held_out in ("test", "validation"):
        with pytest.raises(TestSplitLeak, match="test and validation splits are for evaluation only"):
            training_safe(train + [next(p for p in puzzles if p.split == held_out)], "the solving prompt")
    with pytest.raises(FileNotFoundError, match="puzzles.json"):
        load_p3(P3 / "missing")
