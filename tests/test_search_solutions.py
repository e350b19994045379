"""Search solutions: a copy of an integer-answer puzzle and a loop over integers, kept only when
the sandbox passes it within the evaluation judge's 1 s; never for the test split."""
import ast

import pytest

from engine.sandbox import verify_many
from engine.selfplay.puzzle_code import fingerprint, without_blank_lines
from engine.selfplay.search_solutions import SEARCH_RANGE, search_reach, search_solution
from engine.selfplay.training_text import training_example
from webapp.puzzles.catalogue import add_search_solutions
from webapp.puzzles.models import Attempt, Puzzle

MODULAR = 'def sat(n: int, a=17, b=3):\n    """Find n > 100 with n % a == b."""\n    return n % a == b and n > 100'
ASSERTING = "def sat(i: int, li=[5, 8, 2, 9]):\n    assert li[i] > 7\n    return li[i] == max(li)"  # raises on most i
NEGATIVE = "def sat(n: int):\n    return n * n == 250000 and n < 0"
OUT_OF_RANGE = "def sat(n: int):\n    return n == 10 ** 6 + 7"
SLOW = "def sat(n: int):\n    return sum(range(20000)) < 0 or n == 99999"  # 1e5 checks of 20k sums: > 1 s
HOSTILE = "def sat(n: int):\n    while True:\n        pass"


def _verdicts(sources, timeout_s=1.0):
    jobs = [{"id": str(i), "kind": "puzzle", "sat": sat, "sol": search_solution(sat), "timeout_s": timeout_s}
            for i, sat in enumerate(sources)]
    return [v for v in sorted(verify_many(jobs), key=lambda v: int(v.id))]


def test_search_solutions_pass_in_the_sandbox_and_find_the_first_integer_that_works():
    verdicts = _verdicts([MODULAR, ASSERTING, NEGATIVE])
    assert [v.status for v in verdicts] == ["passed", "passed", "passed"], [v.detail for v in verdicts]
    # The sandbox runs the solution apart from the puzzle: it checks its own copy, it never calls sat.
    solution = search_solution(MODULAR)
    assert "sat" not in solution and "def check(n: int, a=17, b=3):" in solution
    namespace = {}
    exec(compile(solution, "<search>", "exec"), namespace)  # our own fixed code, not untrusted input
    assert namespace["sol"]() == 105 and namespace["sol"](a=10, b=1) == 101


def test_searches_that_miss_or_run_long_fail_and_a_hostile_puzzle_times_out():
    verdicts = _verdicts([OUT_OF_RANGE, SLOW, HOSTILE])
    assert OUT_OF_RANGE and SEARCH_RANGE[1] <= 10 ** 6 + 7
    assert verdicts[0].status == "failed"  # returns None: the answer is outside the range
    assert verdicts[1].status == "timeout" and verdicts[2].status == "timeout"


def test_only_integer_answers_and_readable_puzzles_get_one():
    assert search_solution("def sat(s: str):\n    return s == 'ab'") is None
    assert search_solution("def sat(li: List[int]):\n    return len(li) == 3") is None
    assert search_solution("def sat(x: float):\n    return x > 2") is None
    assert search_solution("def sat(n):\n    return n == 3") is None  # no annotation
    assert search_solution("def sat(n: int:\n    return n") is None


def test_a_training_example_opens_g_with_its_body_as_the_prompt_does():
    text = training_example(MODULAR, search_solution(MODULAR))
    assert "def g(a=17, b=3) -> int:\n    def check(n: int, a=17, b=3):\n        return n % a == b" in text
    assert text.endswith("assert f(g())\n") and "\n\n\n" not in text
    # Dropping blank lines never changes a program: a string that holds one keeps it.
    source = 'def g():\n    x = """a\n\n    def b"""\n\n    def h():\n        return x\n    return h()'
    assert without_blank_lines(source) == source
    assert without_blank_lines("def g():\n\n    return 1") == "def g():\n    return 1"


@pytest.mark.django_db
def test_the_catalogue_adds_verified_search_solutions_once_and_never_to_the_test_split():
    def puzzle(name, sat, answer_type="int", **fields):
        fields = {"source": Puzzle.Source.P3_TRAIN, **fields}
        return Puzzle.objects.create(name=name, sat=sat, answer_type=answer_type, fingerprint=fingerprint(sat),
                                     **fields)

    Puzzle.objects.filter(source=Puzzle.Source.SEED).delete()  # the migration's seeds: only these puzzles here
    solvable = puzzle("Modular", MODULAR)
    missed = puzzle("Far", OUT_OF_RANGE)
    held_out = puzzle("Held", NEGATIVE, split=Puzzle.Split.TEST, source=Puzzle.Source.P3_TEST)
    text = puzzle("Text", "def sat(s: str):\n    return s == 'ab'", answer_type="str")
    rejected = puzzle("Bad", ASSERTING, review_state=Puzzle.ReviewState.REJECT)
    counts = add_search_solutions()
    assert counts == {"written": 2, "checked": 2, "passed": 1, "failed": 1}
    kept = Attempt.objects.get(puzzle=solvable)
    assert kept.origin == "search" and kept.status == "passed" and kept.kept
    solvable.refresh_from_db()
    assert solvable.status == Puzzle.Status.SOLVED and solvable.model_attempts == 0  # not a model's attempt
    assert list(Attempt.objects.training_pairs()) == [kept]
    assert Attempt.objects.get(puzzle=missed).status == "failed"
    missed.refresh_from_db()
    assert missed.status == Puzzle.Status.UNVERIFIED  # a failed search says nothing about the puzzle
    assert not Attempt.objects.filter(puzzle__in=[held_out, text, rejected]).exists()
    assert add_search_solutions() == {"written": 0, "checked": 0, "passed": 0, "failed": 0}  # idempotent
    # A call cut short before its verdicts leaves pending attempts: the next call verifies them.
    Attempt.objects.filter(pk=kept.pk).update(status="pending", kept=False)
    assert add_search_solutions() == {"written": 0, "checked": 1, "passed": 1, "failed": 0}
    kept.refresh_from_db()
    assert kept.status == "passed" and kept.kept
    ast.parse(kept.code)


@pytest.mark.django_db
def test_import_p3_writes_search_solutions_for_train_puzzles_only():
    import io
    import re

    from django.core.management import call_command

    from tests.support import BENCHMARK_DATA

    out = io.StringIO()
    call_command("import_p3", str(BENCHMARK_DATA / "p3"), "--search-solutions", stdout=out)
    found = re.search(r"search solutions: (\d+) passed, (\d+) failed of (\d+) written \(test split left alone\)",
                      out.getvalue())
    assert found, out.getvalue()
    passed, failed, written = map(int, found.groups())
    assert passed + failed == written and passed > 50
    searches = Attempt.objects.filter(origin=Attempt.Origin.SEARCH)
    assert searches.count() == written and not searches.filter(puzzle__split="test").exists()
    assert searches.get(puzzle__name="IntMul:0").status == "passed"  # a P3 train puzzle


def test_search_reach_says_how_far_the_template_alone_gets():
    reach = search_reach([("mod", MODULAR), ("far", OUT_OF_RANGE), ("text", "def sat(s: str):\n    return s == 'a'")],
                         verify_many)
    assert reach == {"puzzles": 3, "integer_answers": 2, "statuses": {"passed": 1, "failed": 1}, "solved": ["mod"]}


def test_the_command_line_reports_the_reach_on_a_p3_split():
    import json
    import subprocess
    import sys

    from tests.support import BENCHMARK_DATA

    done = subprocess.run([sys.executable, "-m", "engine.selfplay", "search", "--split", "train",
                           "--p3", str(BENCHMARK_DATA / "p3")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    reach = json.loads(done.stdout)
    assert reach["split"] == "train" and reach["puzzles"] == 121  # one instance per problem (34 held out)
    assert 10 < len(reach["solved"]) < reach["integer_answers"] == sum(reach["statuses"].values())
    assert "IntMul:0" in reach["solved"]
