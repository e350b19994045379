"""Static reading of puzzle sources: which function is `sat`, its answer type, which is `sol`."""
from __future__ import annotations

import ast
from dataclasses import dataclass
from types import CodeType

from engine.sandbox.answer_types import TypeSpec, UnsupportedAnnotation, parse_annotation


class PuzzleFormError(ValueError):
    """The puzzle is not in P3 form (refused before running)."""


@dataclass(frozen=True)
class PuzzleSpec:
    sat_name: str
    sol_name: str
    answer_type: TypeSpec
    sat_code: CodeType  # compiled once here, from the tree already parsed; runs only exec them
    sol_code: CodeType


def _functions(tree: ast.Module) -> list[ast.FunctionDef]:
    return [node for node in tree.body if isinstance(node, ast.FunctionDef)]


def _pick(functions: list[ast.FunctionDef], preferred: str, what: str) -> ast.FunctionDef:
    for node in functions:
        if node.name == preferred:
            return node
    if len(functions) == 1:
        return functions[0]
    if not functions:
        raise PuzzleFormError(f"no function definition in {what}")
    raise PuzzleFormError(f"{what} defines several functions and none is named {preferred!r}")


def analyse_puzzle(sat_source: str, sol_source: str) -> PuzzleSpec:
    """Raises SyntaxError (with filename `sat`/`sol`) or PuzzleFormError."""
    sat_tree = ast.parse(sat_source, "<sat>")
    sol_tree = ast.parse(sol_source, "<sol>")
    sat = _pick(_functions(sat_tree), "sat", "sat")
    args = sat.args
    positional = args.posonlyargs + args.args
    if not positional:
        raise PuzzleFormError(f"{sat.name}() has no answer parameter")
    if args.vararg or args.kwarg:
        raise PuzzleFormError(f"{sat.name}() may not take *args or **kwargs")
    if len(args.defaults) != len(positional) - 1 or any(d is None for d in args.kw_defaults):
        raise PuzzleFormError(f"every parameter of {sat.name}() after the answer needs a default value")
    try:
        answer_type = parse_annotation(positional[0].annotation)
    except UnsupportedAnnotation as exc:
        raise PuzzleFormError(str(exc)) from None
    sol = _pick(_functions(sol_tree), "sol", "sol")
    return PuzzleSpec(sat.name, sol.name, answer_type, compile(sat_tree, "<sat>", "exec"),
                      compile(sol_tree, "<sol>", "exec"))


def compile_source(source: str, name: str) -> CodeType:
    """Raises SyntaxError (compiling never runs the code)."""
    return compile(ast.parse(source, f"<{name}>"), f"<{name}>", "exec")
