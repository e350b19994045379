"""engine/codechat/dialog_study.py: the MBPP dialog study replayed with simulated feedback, through
the real sandbox. A scripted student fixes its code only when the feedback says what is wrong, so
each feedback kind's per-turn curve is known in advance; a scripted feedback writer stands in for
the feedback model (the guard against hints that paste the reference is what is tested)."""
import pytest

from engine.codechat import feedback
from engine.codechat.dialog_study import StudyConfig, run_study, table
from engine.config import ConfigError
from engine.datasets.mbpp import MbppTask
from engine.lm.generation import Completion
from engine.sandbox import verify_many


def verify(jobs):
    return verify_many(jobs)


TASKS = [
    MbppTask(901, "Write a function to add two numbers.", "def add(a, b):\n    return a + b",
             ["assert add(1, 2) == 3", "assert add(2, 2) == 4"], "", "test"),
    MbppTask(902, "Write a function to double a number.", "def double(x):\n    return x * 2",
             ["assert double(2) == 4"], "", "test"),
    MbppTask(903, "Write a function to negate a number.", "def negate(x):\n    return 0 - x if x else 0",
             ["assert negate(3) == -3"], "", "test"),
]
RIGHT = {"add": "def add(a, b):\n    return a + b", "double": "def double(x):\n    return x * 2",
         "negate": "def negate(x):\n    return -x"}
WRONG = {"add": "def add(a, b):\n    return a - b", "double": "def double(x):\n    return x * 2",
         "negate": "def negate(x):\n    return x"}


def block(code):
    return f"Here you go:\n```python\n{code}\n```"


class Student:
    """Right at once on `double`; on the others right only after feedback that names the expected
    value (`tests`) or says "plus"/"minus" (a hint); the control's words change nothing."""
    name, backend, quantization, device, tokenizer = "student", "scripted", "none", "cpu", None

    def __init__(self):
        self.histories = []

    def sample_many(self, prompts, n, params, cancel=None):
        self.histories += prompts
        return [[Completion(self.answer(prompt), 7, "stop")] for prompt in prompts]

    def answer(self, messages):
        task = messages[0]["content"]
        name = next(name for name in RIGHT if f"{name}(" in task)
        last = messages[-1]["content"]
        helped = "should return" in last or "plus" in last or "minus" in last
        return block(RIGHT[name] if helped else WRONG[name])


class HintWriter:
    """Says "use plus" for add; pastes the reference's line for negate (a leak)."""

    def __init__(self):
        self.prompts = []

    def sample_many(self, prompts, n, params, cancel=None):
        self.prompts += prompts
        return [[Completion("You subtract where the task asks for plus." if "add(" in p[0]["content"]
                            else "Just write:  return 0 - x if x else 0", 9, "stop")] for p in prompts]


def test_a_replayed_study_gives_each_kind_its_per_turn_curve():
    student, writer = Student(), HintWriter()
    result = run_study(student, TASKS, StudyConfig(turns=3), verify, feedback_model=writer)
    assert result["tasks"] == 3 and result["turn0_solved"] == 1 and result["failed"] == [901, 903]
    summary = result["summary"]
    # tests: both failed tasks fixed at turn 1; hint: add fixed, negate's hint pasted the reference
    # (rejected: the control's words were sent, so it stays unsolved); none: nothing fixed
    assert summary["tests"]["solved_by_turn"] == [0, 2, 2, 2]
    assert summary["tests"]["solved_rate_by_turn"] == [pytest.approx(1 / 3, abs=1e-4), 1.0, 1.0, 1.0]
    assert summary["tests"]["error_reduction"] == 1.0 and summary["tests"]["mean_first_success_turn"] == 1
    assert summary["hint"]["solved_by_turn"] == [0, 1, 1, 1] and summary["hint"]["error_reduction"] == 0.5
    assert summary["none"]["solved_by_turn"] == [0, 0, 0, 0] and summary["none"]["mean_first_success_turn"] is None
    assert summary["tests"]["against_none"]["gained"] == 2 and summary["tests"]["against_none"]["difference"] == 1.0
    assert result["hint_rejections"] == {"code": 3, "empty": 0}  # negate's hint, turns 1-3
    # the control arm ran all its turns, with the control's words in the chat's repair prompt
    negate_none = next(t for t in result["transcripts"] if t["task_id"] == 903)["arms"]["none"]
    assert [turn["turn"] for turn in negate_none] == [1, 2, 3]
    assert all(turn["feedback"] == feedback.CONTROL and feedback.CONTROL in turn["prompt"] for turn in negate_none)
    negate_hint = next(t for t in result["transcripts"] if t["task_id"] == 903)["arms"]["hint"]
    assert negate_hint[0]["rejected"] == "code" and "return 0 - x" in negate_hint[0]["hint_raw"]
    # the dialog history: task, answer, feedback, answer, feedback ... as the chat builds it
    longest = max(student.histories, key=len)
    assert [m["role"] for m in longest] == ["user", "assistant"] * 3 + ["user"]
    assert "Feedback: " in longest[2]["content"] and "I ran your code against the tests" in longest[2]["content"]
    # the feedback model saw the reference, the student never did
    assert "return a + b" in writer.prompts[0][0]["content"]
    assert not any("return a + b" in m["content"] for h in student.histories for m in h if m["role"] == "user")
    rendered = table(result)
    assert "| tests | 33.3% | 100.0% | 100.0% | 100.0% | 100.0% (100.0–100.0) |" in rendered
    assert "| none | 33.3% | 33.3% | 33.3% | 33.3% | 0.0% (0.0–0.0) |" in rendered


def test_tests_feedback_says_which_call_what_came_back_and_what_was_expected():
    [verdict] = verify([{"id": "a", "kind": "tests", "code": WRONG["add"], "tests": TASKS[0].tests,
                         "all_tests": True}])
    said = feedback.tests_feedback(verdict.as_dict(), WRONG["add"])
    assert said == "When I call `add(1, 2)`, your function returns -1, but it should return 3."
    [crash] = verify([{"id": "b", "kind": "tests", "code": "def add(a, b):\n    return a + None",
                       "tests": TASKS[0].tests, "all_tests": True}])
    said = feedback.tests_feedback(crash.as_dict(), "def add(a, b): ...")
    assert said.startswith("When I call `add(1, 2)`, it fails with TypeError") and said.endswith("should return 3.")
    assert feedback.tests_feedback({"status": "no code"}, "") == feedback.NO_CODE


def test_the_hint_guard_rejects_replies_that_paste_code():
    reference = ("def first_repeated(s):\n    seen, order = set(), []\n    for ch in s:\n"
                 "        if ch in seen:\n            return ch")
    assert feedback.leaks_code("Keep two things:  seen, order = set(), []  then check each char.", reference)
    assert feedback.leaks_code("Try this:\n```python\nprint(1)\n```", reference)
    assert not feedback.leaks_code("You return the last character; return the first one seen twice.", reference)
    # the function's name from the signature is not a leak (the tests show it anyway)
    assert not feedback.leaks_code("def first_repeated(s): should stop at the first repeat.", reference)


def test_bad_settings_are_refused_and_hints_need_a_writer():
    with pytest.raises(ConfigError) as caught:
        StudyConfig(kinds=("tests", "praise"), turns=9).check()
    assert set(caught.value.errors) == {"kinds", "turns"}
    with pytest.raises(ValueError, match="feedback model"):
        run_study(Student(), TASKS, StudyConfig(kinds=("hint",)), verify)


def test_mbpp_setup_code_runs_after_the_solution_it_builds_on():
    """MBPP 367 and 927: test_setup_code builds trees of the solution's own Node class."""
    from engine.codechat.checks import job_for

    solution = ("class Node:\n    def __init__(self, data):\n        self.data, self.left, self.right = data, None, None\n"
                "def size(node):\n    return 0 if node is None else 1 + size(node.left) + size(node.right)")
    job = job_for("task", solution, tests=["assert size(root) == 2"], setup="root = Node(1)\nroot.left = Node(2)")
    [verdict] = verify([job])
    assert verdict.status == "passed", verdict.detail
