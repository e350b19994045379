"""How a test verdict reads on a page: "1 of 3 tests passed", never a count that looks like failures."""
from django import template

register = template.Library()


@register.filter
def tests_passed(tests) -> str:
    tests = tests or []
    passed = sum(1 for test in tests if isinstance(test, dict) and test.get("status") == "passed")
    return f"{passed} of {len(tests)} test{'s' if len(tests) != 1 else ''} passed"
