"""New instances of P3 puzzles: the puzzle and its reference solution get the same new values,
the sandbox decides which variants are kept, and the rewriting is deterministic and total."""
import random

from engine.sandbox import verify_many
from engine.selfplay.instance_variants import mutate, variants
from engine.selfplay.puzzle_code import first_function

SAT = '''def sat(li: List[int], target=17, nums=[3, 5, 9, 12], word="Hello"):
    """Pick two numbers adding up to target."""
    return len(li) == 2 and li[0] in nums and li[1] in nums and sum(li) == target and word[0].isupper()'''
SOL = '''def sol(target=17, nums=[3, 5, 9, 12], word="Hello"):
    return next([a, b] for a in nums for b in nums if a + b == target)'''


def _defaults(source):
    import ast

    function = first_function(source)
    names = [a.arg for a in function.args.args][-len(function.args.defaults):]
    return {n: ast.literal_eval(d) for n, d in zip(names, function.args.defaults)}


def test_puzzle_and_solution_get_the_same_new_values():
    found = variants(SAT, SOL, 6, seed=1)
    assert len(found) == 6 and len({v.sat for v in found}) == 6
    for variant in found:
        sat_values, sol_values = _defaults(variant.sat), _defaults(variant.sol)
        assert sat_values == sol_values != {"target": 17, "nums": [3, 5, 9, 12], "word": "Hello"}
        assert variant.changed and all(sat_values[n] != _defaults(SAT)[n] for n in variant.changed)
        assert variant.sat.startswith("def sat(li: List[int], target=")  # the answer parameter is kept
        assert isinstance(sat_values["word"], str) and len(sat_values["word"]) == 5
    assert variants(SAT, SOL, 6, seed=1) == found  # deterministic for a seed
    assert variants(SAT, SOL, 6, seed=2) != found


def test_the_sandbox_keeps_the_variants_the_reference_still_solves():
    found = variants(SAT, SOL, 20, seed=0)
    verdicts = {v.id: v for v in verify_many([{"id": str(i), "kind": "puzzle", "sat": v.sat, "sol": v.sol}
                                              for i, v in enumerate(found)])}
    passed = [found[int(i)] for i, v in verdicts.items() if v.passed]
    failed = [found[int(i)] for i, v in verdicts.items() if not v.passed]
    assert passed and failed  # some sums have no pair any more, or "word" lost its capital
    for variant in passed:
        values = _defaults(variant.sat)
        assert any(a + b == values["target"] for a in values["nums"] for b in values["nums"])


def test_nothing_to_vary_or_nothing_readable_gives_no_variants():
    assert variants("def sat(s: str):\n    return s == 'abc'", "def sol():\n    return 'abc'", 3) == []
    assert variants("def sat(x: int, a=len('ab')):\n    return x == a", "def sol(a=len('ab')):\n    return a", 3) == []
    assert variants("def sat(x: int, a=3:\n", "def sol(a=3):\n    return a", 3) == []
    # A solution whose default differs from the puzzle's is not rewritten to match it.
    assert variants("def sat(x: int, a=3):\n    return x == a", "def sol(a=4):\n    return a", 3) == []


def test_mutation_keeps_type_shape_and_sign_and_handles_huge_integers():
    rng = random.Random(0)
    huge = 7 ** 5000
    for _ in range(50):
        assert 0 <= mutate(3, rng) <= 5 and mutate(True, rng) is True and mutate(None, rng) is None
        assert mutate(-4, rng) < 0
        assert isinstance(mutate(2.5, rng), float)
        nested = mutate([[1, 2], [3, 4]], rng)
        assert [len(row) for row in nested] == [2, 2]
        assert mutate((1, "ab"), rng).__class__ is tuple
        assert huge // 2 <= mutate(huge, rng) <= huge * 3 // 2
    sentence = mutate("The quick fox, 42!", random.Random(3))
    assert len(sentence) == 18 and sentence[3] == " " and sentence[-1] == "!" and sentence[13] == ","
