"""P3 answer types: read `sat`'s annotation and check an answer has exactly that type.

Exactly means `type(x) is T` all the way down: a bool is not an int, an int is not a float,
a tuple is not a list, and no subclass passes.
"""
from __future__ import annotations

import ast

SCALARS = {"int": int, "float": float, "str": str, "bool": bool}
LIST_NAMES = {"list", "List", "typing.List"}

# A type is a scalar name ("int") or ("list", inner).
TypeSpec = str | tuple


class UnsupportedAnnotation(ValueError):
    """The annotation is not one of int, float, str, bool, or list[...] of those."""


def _name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return f"{node.value.id}.{node.attr}"
    return None


def parse_annotation(node: ast.expr | None) -> TypeSpec:
    if node is None:
        raise UnsupportedAnnotation("the answer parameter has no type annotation")
    if isinstance(node, ast.Constant) and isinstance(node.value, str):  # "List[int]" as a string
        try:
            return parse_annotation(ast.parse(node.value, mode="eval").body)
        except SyntaxError:
            raise UnsupportedAnnotation(f"unreadable annotation {node.value!r}") from None
    name = _name(node)
    if name in SCALARS:
        return name
    if isinstance(node, ast.Subscript) and _name(node.value) in LIST_NAMES:
        return ("list", parse_annotation(node.slice))
    raise UnsupportedAnnotation(
        f"answer type {ast.unparse(node)} is not supported (use int, float, str, bool or List[...] of them)"
    )


def parse_type_string(text: str) -> TypeSpec:
    """`"List[List[int]]"` -> ("list", ("list", "int")) (the `ans_type` field of puzzles.json)."""
    return parse_annotation(ast.Constant(text))


def describe(spec: TypeSpec) -> str:
    return spec if isinstance(spec, str) else f"List[{describe(spec[1])}]"


def describe_value_type(value) -> str:
    if type(value) is list:
        inner = {describe_value_type(v) for v in value[:5]}
        return f"List[{inner.pop()}]" if len(inner) == 1 else "List[...]" if inner else "List"
    return getattr(value, "tag", None) or type(value).__name__


def matches(value, spec: TypeSpec) -> bool:
    """Exact type check, iterative so deep or long answers cannot exhaust the stack."""
    stack = [(value, spec)]
    while stack:
        item, want = stack.pop()
        if isinstance(want, str):
            if type(item) is not SCALARS[want]:
                return False
        else:
            if type(item) is not list:
                return False
            stack.extend((child, want[1]) for child in item)
    return True
