"""Values as plain data: how an answer or a test's computed value crosses out of a sandboxed run.

The run encodes; the trusted side decodes into fresh builtin objects and compares them there,
so an object with a rigged `__eq__`, or a patched builtin in the run, cannot make a comparison
pass. Only types whose equality means the same after the trip are accepted; anything else is
reported as unencodable instead of being guessed.
"""
from __future__ import annotations

import base64
import json
import math
from collections import Counter, OrderedDict, defaultdict
from decimal import Decimal
from fractions import Fraction

from engine.sandbox.framing import to_json
from engine.sandbox.pristine import BUILTINS

__builtins__ = BUILTINS  # noqa: A001 - names here resolve in the pristine builtins (see pristine.py)

MAX_DEPTH = 200
BIG_INT_BITS = 4000  # about 1,200 decimal digits


class UnencodableValue(TypeError):
    """The value's type cannot cross the boundary with its meaning intact."""


_CONTAINERS = {list: "list", tuple: "tuple", set: "set", frozenset: "frozenset"}
_DICT_LIKE = (dict, OrderedDict, defaultdict, Counter)  # compare as dicts once decoded


def _base_type(value):
    """The builtin type to encode `value` as, or None.

    A subclass is accepted only if it keeps its base's equality (a namedtuple is a tuple;
    a class with its own __eq__ is not).
    """
    kind = type(value)
    if kind in (bool, int, float, str, bytes, complex, type(None), Decimal, Fraction) or kind in _CONTAINERS:
        return kind
    if kind in _DICT_LIKE:
        return dict
    for base in (bool, int, float, str, bytes, tuple, list, dict, set, frozenset):
        if isinstance(value, base):
            return base if kind.__eq__ is base.__eq__ and kind.__ne__ is base.__ne__ else None
    return None


def to_data(value, depth: int = 0):
    if depth > MAX_DEPTH:
        raise UnencodableValue("value nested too deeply (or refers to itself)")
    kind = _base_type(value)
    if kind is None:
        raise UnencodableValue(f"a value of type {type(value).__name__} cannot be compared as data")
    if kind is type(None) or kind is bool or kind is str:
        return kind(value) if value is not None else None
    if kind is int:
        value = int(value)
        # Decimal conversion of a huge int is quadratic in CPython; hex is linear.
        return {"int": hex(value)} if value.bit_length() > BIG_INT_BITS else value
    if kind is float:
        value = float(value)
        return value if math.isfinite(value) else {"float": repr(value)}
    if kind is bytes:
        return {"bytes": base64.b64encode(bytes(value)).decode()}
    if kind is complex:
        return {"complex": [to_data(value.real, depth + 1), to_data(value.imag, depth + 1)]}
    if kind is Decimal:
        return {"decimal": str(value)}
    if kind is Fraction:
        return {"fraction": [value.numerator, value.denominator]}
    if kind is dict:
        return {"dict": [[to_data(k, depth + 1), to_data(v, depth + 1)] for k, v in dict.items(value)]}
    # Iterate the way the base type does, matching the base equality the value keeps.
    return {_CONTAINERS[kind]: [to_data(item, depth + 1) for item in kind.__iter__(value)]}


_JSON_SCALARS = (int, str, bool, type(None))


def _is_plain_json(value) -> bool:
    """Only exact lists, ints, strs, bools, None and finite floats: JSON carries these as they are.

    Most answers (P3's `List[int]`, `str`, ...) have this shape; encoding them without a tag
    per node is ~10x faster for big answers.
    """
    stack, seen = [value], set()
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is list:
            if id(item) in seen:  # shared or self-containing: let the general encoder decide
                return False
            seen.add(id(item))
            stack.extend(item)
        elif kind is float:
            if not math.isfinite(item):
                return False
        elif kind is int:
            if item.bit_length() > BIG_INT_BITS:
                return False
        elif kind not in _JSON_SCALARS:
            return False
    return True


def dumps(value) -> str:
    try:
        if _is_plain_json(value):
            return to_json({"json": value})
    except (ValueError, RecursionError):  # a list that contains itself, or nested too deep
        pass
    return to_json(to_data(value))


_DECODERS = {
    "json": lambda v: v,  # exact already: JSON arrays are lists, numbers int or float
    "list": lambda v: [from_data(x) for x in v],
    "tuple": lambda v: tuple(from_data(x) for x in v),
    "set": lambda v: {from_data(x) for x in v},
    "frozenset": lambda v: frozenset(from_data(x) for x in v),
    "dict": lambda v: {from_data(k): from_data(x) for k, x in v},
    "float": lambda v: float(v),
    "int": lambda v: int(v, 16),
    "bytes": lambda v: base64.b64decode(v, validate=True),
    "complex": lambda v: complex(from_data(v[0]), from_data(v[1])),
    "decimal": lambda v: Decimal(v),
    "fraction": lambda v: Fraction(int(v[0]), int(v[1])),
}


def from_data(data):
    """Decode (trusted side). Raises ValueError on anything malformed."""
    if data is None or type(data) in (bool, int, float, str):
        return data
    if type(data) is dict and len(data) == 1:
        (tag, payload), = data.items()
        decoder = _DECODERS.get(tag)
        if decoder is not None:
            try:
                return decoder(payload)
            except (TypeError, ValueError, ArithmeticError, IndexError) as exc:
                raise ValueError(f"malformed {tag} value: {exc}") from None
    raise ValueError("malformed encoded value")


def loads(text: str):
    try:
        return from_data(json.loads(text))
    except RecursionError:
        raise ValueError("encoded value nested too deeply") from None


class _Tagged:
    """Stands for a non-list tagged value in `loads_shape` (only its type name matters there)."""

    def __init__(self, tag: str):
        self.tag = tag


def _shape(data):
    if data is None or type(data) in (bool, int, float, str):
        return data
    if type(data) is dict and len(data) == 1:
        (tag, payload), = data.items()
        if tag == "list" and type(payload) is list:
            return [_shape(item) for item in payload]
        if tag == "json":
            return payload
        if tag == "float":
            return 0.0
        if tag == "int":
            return 0
        return _Tagged(tag)
    raise ValueError("malformed encoded value")


def loads_shape(text: str):
    """Decode only as far as a type check needs: every int becomes 0, so a million-digit
    answer costs nothing to check here (the run that checks `sat` decodes it for real)."""
    try:
        return _shape(json.loads(text, parse_int=lambda digits: 0))
    except RecursionError:
        raise ValueError("encoded value nested too deeply") from None
