"""New instances of a puzzle: the same `sat` and reference `sol` with other parameter values.

Why: P3 makes many instances of each problem with its own generators, but the dataset ships about
four per train problem, and a 135M model that sees those few memorises their constants instead
of the method. Perturbing the defaults the two functions share (numbers, strings, lists) and
keeping only the variants whose reference solution still passes gives more verified pairs from
the train split alone. This module only rewrites source; whether a variant is kept is the
sandbox's call, as for every other pair.
"""
from __future__ import annotations

import ast
import random
import string
from dataclasses import dataclass

from engine.selfplay.puzzle_code import big_literals, parse, unparse

_SCALARS = (bool, int, float, str)


@dataclass(frozen=True)
class Variant:
    sat: str
    sol: str
    changed: tuple[str, ...]  # the parameters whose value differs from the original


def _defaults(function: ast.FunctionDef) -> dict[str, ast.expr]:
    """Parameter name → default expression, for every parameter that has one."""
    args = function.args
    positional = args.posonlyargs + args.args
    named = dict(zip([a.arg for a in positional[len(positional) - len(args.defaults):]], args.defaults))
    named.update({a.arg: d for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None})
    return named


def _set_defaults(function: ast.FunctionDef, values: dict[str, object]) -> None:
    args = function.args
    positional = args.posonlyargs + args.args
    first = len(positional) - len(args.defaults)
    for index, arg in enumerate(positional[first:]):
        if arg.arg in values:
            args.defaults[index] = _literal(values[arg.arg])
    for index, arg in enumerate(args.kwonlyargs):
        if arg.arg in values and args.kw_defaults[index] is not None:
            args.kw_defaults[index] = _literal(values[arg.arg])


def _literal(value) -> ast.expr:
    return ast.parse(repr(value), mode="eval").body


def _new_letter(ch: str, rng: random.Random) -> str:
    if ch.isdigit():
        return rng.choice(string.digits)
    letters = string.ascii_uppercase if ch.isupper() else string.ascii_lowercase
    return rng.choice(letters)


def mutate(value, rng: random.Random, rate: float = 0.5):
    """A nearby value of the same type and shape: small integers move by one or two (and stay
    non-negative if they were), large ones and floats scale by 0.5-1.5, letters and digits in
    strings change, list items change or the list is shuffled. Booleans, None and other types stay."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        if abs(value) <= 10:
            moved = value + rng.choice((-2, -1, 1, 2))
            return abs(moved) if value >= 0 else moved
        return value * rng.randint(50, 150) // 100 or value  # integer maths: P3 has huge ones
    if isinstance(value, float):
        return round(value * rng.uniform(0.5, 1.5), 4)
    if isinstance(value, str):
        return "".join(_new_letter(c, rng) if c.isalnum() and rng.random() < rate else c for c in value)
    if isinstance(value, (list, tuple)):
        items = [mutate(v, rng, rate) if rng.random() < rate else v for v in value]
        if items and all(isinstance(v, _SCALARS) for v in items) and rng.random() < 0.3:
            rng.shuffle(items)
        return type(value)(items)
    return value


def variants(sat: str, sol: str, count: int, seed: int = 0, max_tries: int = 0) -> list[Variant]:
    """Up to `count` distinct rewrites of (sat, sol) with new values for the parameters they share.
    Empty when they share none (nothing to vary) or either source cannot be read."""
    try:
        sat_tree, sol_tree = parse(sat), parse(sol)
        sat_fn, sol_fn = _first_function(sat_tree), _first_function(sol_tree)
    except SyntaxError:
        return []
    if sat_fn is None or sol_fn is None:
        return []
    sat_defaults, sol_defaults = _defaults(sat_fn), _defaults(sol_fn)
    original = {}
    for name in sat_defaults.keys() & sol_defaults.keys():
        try:
            with big_literals():
                value = ast.literal_eval(sat_defaults[name])
        except (ValueError, SyntaxError, TypeError):
            continue
        if value == _value_of(sol_defaults[name]):
            original[name] = value
    if not original:
        return []
    rng = random.Random(f"{seed}:{sat}")
    names = sorted(original)
    found = []
    with big_literals():  # P3 has integer defaults of thousands of digits
        seen = {repr([original[name] for name in names])}
        for _ in range(max_tries or count * 5):
            if len(found) >= count:
                break
            values = {name: mutate(original[name], rng) for name in names}
            key = repr([values[name] for name in names])
            if key in seen:
                continue
            seen.add(key)
            _set_defaults(sat_fn, values)
            _set_defaults(sol_fn, values)
            changed = tuple(name for name in names if values[name] != original[name])
            found.append(Variant(unparse(sat_tree), unparse(sol_tree), changed))
    return found


def _first_function(tree: ast.Module) -> ast.FunctionDef | None:
    return next((node for node in tree.body if isinstance(node, ast.FunctionDef)), None)


def _value_of(node: ast.expr):
    try:
        with big_literals():
            return ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError):
        return _Unreadable


class _Unreadable:
    """A default that is not a literal: never equal to the puzzle's value, so never varied."""
