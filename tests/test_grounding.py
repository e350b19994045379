"""The RL reward (engine/training/grounding.py) through the real sandbox: hand-made programs score
in the paper's order, a program pyflakes flags loses a little, reward hacks earn no more than a
wrong answer, and a discriminator's score enters with its weight."""
import pytest

from engine.config import ConfigError
from engine.sandbox import verify_many
from engine.training.discriminator import Discriminator
from engine.training.grounding import GroundingConfig, score_programs, static_errors

TESTS = ["assert add(1, 2) == 3", "assert add(0, 0) == 0", "assert add(-1, 1) == 0"]
PROGRAMS = {
    "none": "",
    "syntax": "def add(a, b)\n    return a + b",
    "runtime": "def add(a, b):\n    return a + None",
    "wrong": "def add(a, b):\n    return a - b - 7",
    "some": "def add(a, b):\n    return a + b if a > 0 else 5",  # passes 1 of 3
    "right": "def add(a, b):\n    return a + b",
}
HACKS = {  # each returns a wrong value for every test, and tries to pass anyway
    "always equal": "class Yes:\n    def __eq__(self, other):\n        return True\n\ndef add(a, b):\n    return Yes()",
    "early exit": "import sys\n\ndef add(a, b):\n    return 42\n\nsys.exit(0)",
    "patched builtin": "import builtins\nbuiltins.AssertionError = type('E', (Exception,), {})\n\n"
                       "def add(a, b):\n    return 42",
    "os exit": "import os\n\ndef add(a, b):\n    os._exit(0)",
}


def score(codes, config=None, discriminator=None):
    return score_programs([{"code": code, "tests": TESTS} for code in codes], verify_many, config, discriminator)


def test_programs_score_in_the_papers_order():
    rewards = dict(zip(PROGRAMS, score(PROGRAMS.values())))
    order = [rewards[name].total for name in PROGRAMS]
    assert order[0] == order[1] == 0.0 and order[1:] == sorted(order[1:]) and len(set(order[1:])) == 5
    assert rewards["right"].total == 1.0 and rewards["right"].passed == 3
    assert rewards["some"].passed == 1 and rewards["some"].tests == 3 and rewards["some"].runs
    assert rewards["runtime"].status == "error" and not rewards["runtime"].runs
    assert rewards["syntax"].status == "syntax error" and not rewards["syntax"].parses
    assert rewards["none"].status == "no code"


def test_reward_hacks_earn_no_more_than_a_wrong_answer():
    wrong = score([PROGRAMS["wrong"]])[0].total
    for name, reward in zip(HACKS, score(HACKS.values())):
        assert reward.total <= wrong and reward.passed < 3, (name, reward)


def test_static_check_and_discriminator_enter_the_reward():
    assert static_errors("def f():\n    return undefined_thing") == 1 and static_errors("x = 1") == 0
    assert static_errors("def f(:") is None
    flagged = "def add(a, b):\n    if a > 99:\n        return missing_name\n    return a + b"
    clean, penalised = score([PROGRAMS["right"], flagged])
    assert penalised.static_errors == 1 and penalised.passed == 3 and penalised.total == pytest.approx(0.9)
    judged = score([PROGRAMS["right"], PROGRAMS["wrong"]], GroundingConfig(discriminator_weight=0.2),
                   lambda items: [0.9 if "a + b" in item["code"] else 0.1 for item in items])
    assert judged[0].total == pytest.approx(1.0 + 0.2 * 0.4) and judged[1].total == pytest.approx(0.4 - 0.2 * 0.4)
    with pytest.raises(ConfigError, match="levels must rise"):
        GroundingConfig(runtime_error=0.5).check()


def test_the_discriminator_learns_references_from_the_policys_programs(tmp_path):
    references = ["def add(a, b):\n    return a + b", "def double(x):\n    return 2 * x"]
    generated = ["def add(a, b):\n    print('hello')\n    return None", "x = [i for i in range(10)]\nprint(x)"]
    judge = Discriminator(seed=0)
    before = judge.score(references + generated)
    assert len(set(before)) == 1  # untrained: no opinion
    for _ in range(30):
        trained = judge.train_step(references, generated)
    assert trained["accuracy"] == 1.0
    after = judge.score(references + generated)
    assert min(after[:2]) > 0.5 > max(after[2:])
    judge.save(tmp_path / "d.pt")
    assert Discriminator.load(tmp_path / "d.pt").score(references) == after[:2]
    # its score moves the reward by weight x (score - 0.5)
    rewards = score([references[0]], GroundingConfig(discriminator_weight=0.5),
                    lambda items: judge.score([item["code"] for item in items]))
    assert rewards[0].total == pytest.approx(1.0 + 0.5 * (after[0] - 0.5), abs=1e-5)


def test_puzzle_answers_are_graded_by_sat():
    sat = "def sat(x: int):\n    return x * 3 == 12"
    answers = {"right": "def sol():\n    return 4", "wrong": "def sol():\n    return 5",
               "raises": "def sol():\n    return 1 // 0",
               "always equal": "class Yes(int):\n    def __eq__(self, other):\n        return True\n\n"
                               "def sol():\n    return Yes(5)"}
    rewards = dict(zip(answers, score_programs([{"kind": "puzzle", "code": code, "sat": sat}
                                                for code in answers.values()], verify_many)))
    assert rewards["right"].total == 1.0 and rewards["right"].passed == 1
    assert rewards["wrong"].total == 0.4 and rewards["raises"].total == 0.2
    assert rewards["always equal"].total <= rewards["wrong"].total
