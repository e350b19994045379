"""Split MBPP/HumanEval-style asserts so that equality is decided outside the run.

`assert CALL == EXPECTED` becomes: the run computes CALL (and EXPECTED, unless it is a literal
the verifier can read itself) and sends the values as data; the verifier compares them. Any
other assert runs as written inside the run.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass

_NO_VALUE = object()


@dataclass(frozen=True)
class TestPlan:
    source: str
    call: str | None = None  # the expression whose value the run sends back
    expected: str | None = None  # the other side, evaluated in the run if not a literal
    literal: object = _NO_VALUE  # the other side's value when the verifier read it itself

    @property
    def split(self) -> bool:
        return self.call is not None

    @property
    def has_literal(self) -> bool:
        return self.literal is not _NO_VALUE

    def for_run(self) -> dict:
        """What the run is told. For a split test, not the assert itself: a run that never sees
        the expected value cannot forge a matching one without computing it."""
        if not self.split:
            return {"source": self.source, "call": None, "expected": None}
        return {"source": None, "call": self.call, "expected": None if self.has_literal else self.expected}


def _literal(node: ast.expr):
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return _NO_VALUE


def plan_test(source: str) -> TestPlan:
    """Raises SyntaxError for a test that does not parse."""
    tree = ast.parse(source, "<test>")
    if len(tree.body) == 1 and isinstance(tree.body[0], ast.Assert):
        test = tree.body[0].test
        if isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq):
            left, right = test.left, test.comparators[0]
            left_value, right_value = _literal(left), _literal(right)
            if left_value is not _NO_VALUE and right_value is _NO_VALUE:
                left, right, right_value = right, left, left_value  # `assert 5 == f(2)`
            return TestPlan(source, ast.unparse(left), ast.unparse(right), right_value)
    return TestPlan(source)
