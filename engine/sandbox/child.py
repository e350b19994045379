"""What a sandboxed run executes once confined: the untrusted code, reported record by record.

Nothing here decides a verdict. Records go out on a private pipe (not stdout), and the
worker that reads them trusts only what the untrusted code cannot choose: for puzzles, the
answer re-checked by `sat` in a different process; for `==` tests, values compared outside.
"""
from __future__ import annotations

import builtins
import os
import sys
import traceback
import typing
from types import CodeType

from engine.sandbox import data_codec, framing
from engine.sandbox.isolation import RESULT_CHANNEL_LOST, RESULT_FD
from engine.sandbox.pristine import BUILTINS
from engine.sandbox.verdict import short

__builtins__ = BUILTINS  # noqa: A001 - names here resolve in the pristine builtins (see pristine.py)

# P3 sources use these names without importing them (the P3 judge provides them too).
P3_NAMES = {name: getattr(typing, name) for name in ("List", "Dict", "Set", "Tuple", "Optional")}


def emit(message: dict, _exit=os._exit) -> None:
    try:
        framing.write_message(RESULT_FD, message)
    except OSError:  # the code closed the channel itself: say so rather than "exited early"
        _exit(RESULT_CHANNEL_LOST)


def exception_record(exc: BaseException) -> dict:
    """Type, message and the line in the untrusted source where it happened."""
    where, line = None, None
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        name = frame.f_code.co_filename
        if name.startswith("<") and name.endswith(">"):
            where, line = name.strip("<>"), lineno
    if isinstance(exc, SyntaxError):
        where, line = (exc.filename or "").strip("<>") or where, exc.lineno
    if isinstance(exc, SystemExit):
        message = f"the code called exit({exc.code!r})"
    elif isinstance(exc, KeyboardInterrupt):
        message = "the code raised KeyboardInterrupt"
    else:
        try:
            message = str(exc)
        except BaseException:  # a hostile __str__
            message = "(unprintable message)"
    return {"type": type(exc).__name__, "message": short(message, 300), "where": where, "line": line}


def fresh_globals(names: dict | None = None) -> dict:
    return {"__name__": "__main__", "__builtins__": builtins, **(names or {})}


def _run(code: CodeType | str, name: str, namespace: dict) -> None:
    if not isinstance(code, CodeType):
        code = compile(code, f"<{name}>", "exec")
    exec(code, namespace)  # noqa: S102 - the sandboxed code


def _finish() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass
    emit({"kind": "done"})


def solve(sat: CodeType, sol: CodeType, sol_name: str) -> None:
    """Puzzle, first run: define `sat` (brute force may call it) and `sol`; send `sol()` as data."""
    try:
        namespace = fresh_globals(P3_NAMES)
        _run(sat, "sat", namespace)
        _run(sol, "sol", namespace)
        answer = namespace[sol_name]()
        try:
            emit({"kind": "answer", "data": data_codec.dumps(answer)})
        except data_codec.UnencodableValue as exc:
            emit({"kind": "unencodable", "message": str(exc)})
    except BaseException as exc:  # everything, SystemExit and KeyboardInterrupt included
        emit({"kind": "error", **exception_record(exc)})
    _finish()


def check(sat: CodeType, sat_name: str, answer_data: str) -> None:
    """Puzzle, second run, in a process the solution never touched: is `sat(answer)` True?"""
    try:
        namespace = fresh_globals(P3_NAMES)
        _run(sat, "sat", namespace)
        result = namespace[sat_name](data_codec.loads(answer_data))
        shown = repr(result) if type(result) in (bool, int, type(None)) else f"a {type(result).__name__}"
        emit({"kind": "sat", "is_true": result is True, "shown": short(shown, 80)})
    except BaseException as exc:
        emit({"kind": "error", **exception_record(exc)})
    _finish()


def run_tests(setup: CodeType | None, code: CodeType, plans: list[dict]) -> None:
    """Tests job: one record per test, in order; the worker compares and may stop us early."""
    # Test expressions see the builtins as they were before the code ran: code that patches
    # `builtins.sorted` cannot change what `assert sorted(f(x)) == [...]` computes. Names the
    # code itself defines still shadow builtins, as in plain Python.
    pristine = BUILTINS
    namespace = fresh_globals()
    try:
        if setup is not None:
            _run(setup, "setup", namespace)
        _run(code, "code", namespace)
    except BaseException as exc:
        emit({"kind": "error", **exception_record(exc)})
        _finish()
        return
    for index, plan in enumerate(plans):
        record = {"kind": "test", "i": index}
        try:
            if plan["call"] is not None:
                scope = {**namespace, "__builtins__": pristine}
                value = eval(compile(plan["call"], f"<test {index + 1}>", "eval"), scope)  # noqa: S307
                record["value"] = data_codec.dumps(value)
                if plan["expected"] is not None:
                    expected = eval(compile(plan["expected"], f"<test {index + 1}>", "eval"), scope)  # noqa: S307
                    record["expected"] = data_codec.dumps(expected)
            else:
                _run(plan["source"], f"test {index + 1}", namespace)
                record["ok"] = True
        except AssertionError as exc:
            record["assertion"] = exception_record(exc)
        except data_codec.UnencodableValue as exc:
            record["unencodable"] = str(exc)
        except BaseException as exc:
            record["error"] = exception_record(exc)
        emit(record)
    _finish()


def main_for(task: dict) -> None:
    """Dispatch; always ends the process (a run never returns into the worker's code)."""
    try:
        kind = task["kind"]
        if kind == "solve":
            solve(task["sat"], task["sol"], task["sol_name"])
        elif kind == "check":
            check(task["sat"], task["sat_name"], task["answer"])
        else:
            run_tests(task["setup"], task["code"], task["plans"])
    finally:
        os._exit(0)
