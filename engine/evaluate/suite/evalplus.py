"""HumanEval+ and MBPP+ (EvalPlus, Liu et al. 2023): the same tasks checked by differential testing,
the program's output on each input against the canonical solution's, as EvalPlus 0.3.1 does.

- Expected outputs come from running each canonical solution on its `base_input` and `plus_input`
  in the sandbox (the dataset is data; its code is treated as untrusted anyway), once: a first
  check computes them for every task in parallel, then they are cached on disk under
  $AUTODIDACT_CACHE_DIR/evalplus (default ~/.cache/autodidact/evalplus) in a file named after the
  dataset file's SHA-256. The sandbox returns verdicts, not values, so the oracle run sends its
  outputs back as the messages of exceptions its tests raise (240 characters each, encoded with
  engine.sandbox.data_codec, decoded by it here), with each input's run time on this host.
  Values compared exactly (atol 0, no special oracle) that would not fit a job travel as digests
  that respect Python's == (HumanEval/15's plus outputs alone are 147 MB of strings).
- Per-input time limits are EvalPlus's: max(1 s, 4 x the canonical solution's time for that input).
  The sandbox only has a per-job limit, so the test program arms an interval timer for each
  call and also fails a call that returned after its limit (a long C call the timer could not
  interrupt); a late call fails its input, as in EvalPlus. The job's own limit is EvalPlus's
  per-check timeout: min(60 s, sum of the input limits) + 1 s. The suite's timeout_s is not used.
- Comparison is EvalPlus's, run inside the sandbox: `out == expected`, the float tolerance
  (the task's atol, or 1e-6 once an expected value is a float or list of floats; as in EvalPlus
  it then stays set for the part's later inputs), numpy.allclose semantics with rtol 1e-7
  (done in pure Python: scalars, broadcasting sequences; anything else fails), the special
  oracles for HumanEval/32 (`find_zero`: |poly(xs, out)| <= atol) and MBPP+ (set equality,
  not-None outputs, `are_equivalent`, `sum_div`, `surface_Area`, `digit_distance_nums`), and
  MBPP+'s input types (tuples, sets, complex numbers) as EvalPlus deserialises them.
- As in EvalPlus, the program runs with `__name__` other than "__main__" (its main guard does
  not run), printing is swallowed, and checking stops at the first failing input. Each sample
  gets two jobs, "base" and "plus": pass@k of the base tests is reported beside base+plus.
- The checking code runs in a namespace of its own (programs define `sum`, `max`, ... at top
  level), after the program, in the same process, as EvalPlus's does: a program bent on forging
  a pass could patch what it relies on; the sandbox still bounds what it can reach. Runs have the
  sandbox's 1 GB of memory (EvalPlus allows 4 GB): Mbpp/255's reference needs more on its plus
  inputs, so that part has no expected outputs here and its check fails with that reason.
"""
from __future__ import annotations

import base64
import hashlib
import json
import marshal
import os
import pickle
import re
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar

from engine.evaluate.suite.base import Benchmark, Defaults, Task
from engine.evaluate.suite.humaneval import FunctionPrompting, read_jsonl
from engine.evaluate.suite.runner import Verify
from engine.lm.code_extraction import extract_code, sanitize
from engine.lm.generation import Prompt
from engine.sandbox import data_codec

MIN_TIME_LIMIT_S = 1.0  # EvalPlus DEFAULT_MIN_TIME_LIMIT
TIME_LIMIT_FACTOR = 4.0  # EvalPlus DEFAULT_GT_TIME_LIMIT_FACTOR
MAX_CHECK_S = 60.0  # EvalPlus EVALPLUS_TIMEOUT_PER_TASK
ORACLE_TIMEOUT_S = 120.0  # one oracle job (the sandbox's ceiling)
CHUNK = 240  # characters of oracle output per test message (the sandbox shows up to 300)
ORACLE_TESTS = 1000  # the sandbox's MAX_TESTS: one header test, then windows of CHUNK characters
PARTS = ("base", "plus")
DIGEST_BUDGET = 200_000  # characters of expected values one part's check carries as values (the rest: digests)

# EvalPlus's instruct prompt for MBPP+ (evalplus/codegen.py), without the assistant prefill.
MBPP_INSTRUCTION = ("Please provide a self-contained Python script that solves the following problem in a "
                    "markdown code block:")
# MBPP+ tasks whose output EvalPlus only checks for not being None (evalplus/eval/_special_oracle.py)
MBPP_OUTPUT_NOT_NONE = ("check_str", "text_match_three", "text_starta_endb")

# --- MBPP+ inputs as EvalPlus deserialises them (evalplus/data/mbpp.py) ---------------------------
_TUPLE_ARGS = {2, 116, 132, 143, 222, 261, 273, 394, 399, 421, 424, 429, 470, 560, 579, 596, 616, 630, 726, 740,
               744, 809}
_TUPLES_IN_LIST_ARGS = {63, 64, 70, 94, 120, 237, 272, 299, 400, 409, 417, 438, 473, 614, 780}
_FIRST_ARG_TUPLES = {75, 413, 444, 753}
_SECOND_ARG_TUPLE = {106, 750}
_FIRST_ARG_TUPLE = {250, 405, 446, 617, 720, 763, 808}
_NESTED_TUPLES = {259, 401, 445}
_ALL_TUPLES = {580, 615, 791}


def _all_tuples(value):
    return tuple(_all_tuples(item) for item in value) if isinstance(value, list) else value


def mbpp_plus_inputs(task_number: int, inputs: list) -> list:
    """The argument lists EvalPlus passes for MBPP+ task `task_number` (JSON has no tuples, sets or
    complex numbers). Quirks kept: task 115 passes `{}` (a dict) for an empty set."""
    n = task_number
    if n in _TUPLE_ARGS:
        return [[tuple(arg) for arg in inp] for inp in inputs]
    if n in _TUPLES_IN_LIST_ARGS:
        return [[[tuple(item) for item in arg] for arg in inp] for inp in inputs]
    if n in _FIRST_ARG_TUPLES:
        return [[[tuple(item) for item in inp[0]]] + [inp[1]] for inp in inputs]
    if n in _SECOND_ARG_TUPLE:
        return [[inp[0]] + [tuple(inp[1])] for inp in inputs]
    if n == 115:
        return [[[set(item) if isinstance(item, list) and len(item) else {} for item in inp[0]]] for inp in inputs]
    if n == 124:
        return [(float(inp[0]), complex(inp[1])) for inp in inputs]
    if n in _FIRST_ARG_TUPLE:
        return [[tuple(inp[0])] + [inp[1]] for inp in inputs]
    if n in _NESTED_TUPLES:
        return [[tuple(tuple(item) for item in arg) for arg in inp] for inp in inputs]
    if n == 278:
        return [[tuple(tuple(item) if isinstance(item, list) else item for item in inp[0])] for inp in inputs]
    if n == 307:
        return [[tuple(inp[0])] + [inp[1], inp[2]] for inp in inputs]
    if n == 722:
        return [[{key: tuple(value) for key, value in inp[0].items()}] + inp[1:] for inp in inputs]
    if n == 252:
        return [[complex(inp[0])] for inp in inputs]
    if n in _ALL_TUPLES:
        return [_all_tuples(inp) for inp in inputs]
    return inputs


# --- what runs in the sandbox ------------------------------------------------------------------
def values_source(name: str, value) -> str:
    """Source that rebuilds `value` (builtin data) under `name` in the run, fast: marshal (a builtin
    module, nothing to import), or pickle for what marshal cannot hold (Decimal, Fraction); base64."""
    try:
        loader, blob = "marshal", marshal.dumps(value, 4)
    except ValueError:
        loader, blob = "pickle", pickle.dumps(value, protocol=4)
    encoded = base64.b64encode(blob).decode("ascii")
    return (f"import binascii as _evalplus_binascii, {loader} as _evalplus_loader\n"
            f"{name} = _evalplus_loader.loads(_evalplus_binascii.a2b_base64({encoded!r}))\n")


# As EvalPlus's exec(code, {}): the program's `if __name__ == "__main__":` block does not run.
NOT_MAIN = '__name__ = "builtins"\n'

# `digest` stands for an expected value too large to carry: equal values (by Python's ==: 1 == 1.0
# == True, sets and dicts in any order) give equal digests; NaN and types without a canonical form
# give None (never equal). Used by the oracle and, only when a part has digests, by the check.
DIGEST = r'''
import hashlib


def _feed(h, x):
    if isinstance(x, (bool, int)):
        h.update(b"i" + hex(x).encode() + b";")
    elif isinstance(x, float):
        if x != x:
            raise ValueError("NaN is equal to nothing")
        h.update(b"i" + hex(int(x)).encode() + b";" if x.is_integer() else b"f" + x.hex().encode() + b";")
    elif isinstance(x, complex):
        if x.imag == 0:
            _feed(h, x.real)
        else:
            h.update(b"c")
            _feed(h, x.real)
            _feed(h, x.imag)
    elif isinstance(x, str):
        data = x.encode("utf-8", "surrogatepass")
        h.update(b"s%d:" % len(data))
        h.update(data)
    elif isinstance(x, bytes):
        h.update(b"b%d:" % len(x))
        h.update(x)
    elif x is None:
        h.update(b"n;")
    elif isinstance(x, (list, tuple)):
        h.update(b"l(" if isinstance(x, list) else b"t(")
        if all(type(item) is int or type(item) is bool for item in x):
            if x:
                h.update(("i" + ";i".join(map(hex, x)) + ";").encode())
        else:
            for item in x:
                _feed(h, item)
        h.update(b")")
    elif isinstance(x, (set, frozenset)):
        h.update(b"S(" + ",".join(sorted(_digest(item) for item in x)).encode() + b")")
    elif isinstance(x, dict):
        h.update(b"D(" + ",".join(sorted(_digest(k) + ":" + _digest(v) for k, v in x.items())).encode() + b")")
    else:
        raise ValueError(f"no canonical form for {type(x).__name__}")


def _digest(x):
    h = hashlib.sha256()
    _feed(h, x)
    return h.hexdigest()


def digest(x):
    try:
        return _digest(x)
    except (ValueError, RecursionError):
        return None
'''

# What only some checks need: compiled on first use (compiling costs about 0.2 ms per KB per job).
CHECK_EXTRAS = DIGEST + r'''
import cmath, math


def poly(xs, x):  # EvalPlus's _poly (HumanEval/32's oracle)
    return sum([coeff * math.pow(x, i) for i, coeff in enumerate(xs)])


def surface_area(base_edge, height):  # Mbpp/581's oracle
    slant_height = math.sqrt((base_edge / 2) ** 2 + height ** 2)
    return round(base_edge ** 2 + 4 * (base_edge * slant_height) / 2)


def digit_distance_nums(num1, num2):  # Mbpp/558's oracle
    a, b = str(num1), str(num2)
    width = max(len(a), len(b))
    return sum(abs(int(x) - int(y)) for x, y in zip(a.zfill(width), b.zfill(width)))


def shape(x):
    if isinstance(x, (list, tuple)):
        inner = [shape(item) for item in x]
        if any(s != inner[0] for s in inner[1:]):
            raise ValueError("inhomogeneous shape")
        return (len(x),) + (inner[0] if inner else ())
    if isinstance(x, (bool, int, float, complex)):
        return ()
    raise TypeError(f"not a number: {type(x).__name__}")


def close(a, sa, b, sb, rtol, atol):  # numpy.isclose (equal_nan=False) over numpy's broadcasting
    if len(sa) < len(sb):
        return all(close(a, sa, y, sb[1:], rtol, atol) for y in b)
    if len(sa) > len(sb):
        return all(close(x, sa[1:], b, sb, rtol, atol) for x in a)
    if not sa:
        inf = cmath.isinf if isinstance(a, complex) or isinstance(b, complex) else math.isinf
        if (isinstance(a, (float, complex)) and inf(a)) or (isinstance(b, (float, complex)) and inf(b)):
            return a == b
        return abs(a - b) <= atol + rtol * abs(b)
    if sa[0] == sb[0]:
        return all(close(x, sa[1:], y, sb[1:], rtol, atol) for x, y in zip(a, b))
    if sa[0] == 1:
        return all(close(a[0], sa[1:], y, sb[1:], rtol, atol) for y in b)
    if sb[0] == 1:
        return all(close(x, sa[1:], b[0], sb[1:], rtol, atol) for x in a)
    raise ValueError("shapes do not broadcast")


def allclose(a, b, rtol, atol):
    return close(a, shape(a), b, shape(b), rtol, atol)
'''

# Test 1 of a check job: defined after the program ran, in a namespace of its own.
CHECK_HARNESS = r'''
import contextlib, io, signal, time


class Sink(io.TextIOBase):
    def write(self, text):
        return len(text)


class Late(Exception):
    pass


def alarm(signum, frame):
    raise Late()


def is_floats(x):  # EvalPlus's is_floats
    if isinstance(x, float):
        return True
    if isinstance(x, (list, tuple)) and x:
        return all(isinstance(i, float) for i in x)
    return False


def extras():
    if "allclose" not in EXTRAS_NS:
        exec(compile(EXTRAS, "<evalplus extras>", "exec"), EXTRAS_NS)
    return EXTRAS_NS


def shown(value):
    import reprlib

    short = reprlib.Repr()
    short.maxstring, short.maxother = 60, 60
    return short.repr(value)


def check(data):
    """EvalPlus's unsafe_execute for one part, stopping at the first failing input."""
    dataset, entry = data["dataset"], data["entry_point"]
    if entry not in PROGRAM:
        raise NameError(f"the program does not define {entry}()")
    fn = PROGRAM[entry]
    atol = data["atol"]
    inputs, expected, digests, limits = data["inputs"], data["expected"], data["digests"], data["limits"]
    special = data["special"]
    sink = Sink()
    signal.signal(signal.SIGALRM, alarm)
    for i, inp in enumerate(inputs):
        where = f"{data['part']} input {i + 1} of {len(inputs)}"
        started = time.perf_counter()
        try:
            signal.setitimer(signal.ITIMER_REAL, limits[i])
            try:
                with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
                    out = fn(*inp)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            if time.perf_counter() - started > limits[i]:
                raise Late()
        except Late:
            raise AssertionError(f"{where}: took longer than its {limits[i]:.3g} s limit") from None
        exp = expected[i]
        try:
            if i in digests:  # the oracle only digests values compared exactly (atol 0, no special oracle)
                exact_match = extras()["digest"](out) == digests[i]
                exp = "(a large value)"
            else:
                exact_match = out == exp
            if special:
                x = extras()
                if dataset == "mbpp":
                    if entry == "are_equivalent":  # Mbpp/164
                        exact_match = exact_match or True
                    elif entry == "sum_div":  # Mbpp/295
                        exact_match = exact_match or out == 0
                    elif entry == "surface_Area":  # Mbpp/581
                        exact_match = exact_match or abs(out - x["surface_area"](*inp)) <= atol
                    elif entry == "digit_distance_nums":  # Mbpp/558
                        exact_match = exact_match or out == x["digit_distance_nums"](*inp)
                    elif entry in data["set_eq"]:
                        exact_match = set(out) == set(exp)
                    elif entry in data["not_none"]:
                        exact_match = out == exp if isinstance(out, bool) else exp == (out is not None)
                if dataset == "humaneval" and entry == "find_zero":
                    assert abs(x["poly"](*inp, out)) <= atol
                    continue
            if atol == 0 and i not in digests and is_floats(exp):
                atol = 1e-6  # as EvalPlus: and it stays so for this part's later inputs
            if not exact_match and atol != 0:
                assert type(out) == type(exp)
                if isinstance(exp, (list, tuple)):
                    assert len(out) == len(exp)
                assert extras()["allclose"](out, exp, 1e-07, atol)
            else:
                assert exact_match
        except Exception:
            raise AssertionError(f"{where}: got {shown(out)}, expected {shown(exp)}") from None
'''

# The oracle: run the reference on (a deep copy of, as EvalPlus's trusted_exec) every input.
# Values compared exactly that are too large to carry travel as digests, largest first, until
# the rest fit DIGEST_BUDGET characters. Test 1 sends "length clock-length sha256(values)",
# tests 2.. the text `clock|values` in windows of `chunk` characters from `offset`.
ORACLE_HARNESS = DIGEST + r'''
import contextlib, copy, io, json, time


class Sink(io.TextIOBase):
    def write(self, text):
        return len(text)


def is_floats(x):  # EvalPlus's is_floats
    if isinstance(x, float):
        return True
    if isinstance(x, (list, tuple)) and x:
        return all(isinstance(i, float) for i in x)
    return False


class OracleChunk(Exception):
    pass


def outputs(data):
    from engine.sandbox import data_codec

    fn = PROGRAM[data["entry_point"]]
    values, times = [], []
    with contextlib.redirect_stdout(Sink()), contextlib.redirect_stderr(Sink()):
        for inp in data["inputs"]:
            inp = copy.deepcopy(inp)
            started = time.perf_counter()
            values.append(fn(*inp))
            times.append(time.perf_counter() - started)
    if data["not_none"]:
        values = [value is not None for value in values]
    atol, exact = data["atol"], []
    for value in values:  # EvalPlus's tolerance, which sticks once an expected value is a float
        if atol == 0 and is_floats(value):
            atol = 1e-6
        exact.append(atol == 0 and not data["special"])
    sizes = [len(data_codec.dumps(value)) for value in values]
    digests, total = {}, sum(sizes)
    for i in sorted(range(len(values)), key=lambda i: -sizes[i]):
        if total <= data["budget"]:
            break
        if exact[i] and digest(values[i]) is not None:
            digests[str(i)] = digest(values[i])
            total -= sizes[i]
    kept = [None if str(i) in digests else value for i, value in enumerate(values)]
    text = '{"digests":%s,"values":%s}' % (json.dumps(digests), data_codec.dumps(kept))
    text = text.replace("\x7f", "\\u007f")  # JSON leaves DEL as it is; the sandbox's detail would not
    clock = ",".join(f"{t:.3e}" for t in times)
    return f"{clock}|{text}", len(clock), hashlib.sha256(text.encode()).hexdigest()


def window(k):
    start = DATA["offset"] + (k - 1) * DATA["chunk"]
    piece = BLOB[start:start + DATA["chunk"]]
    if piece:
        raise OracleChunk(piece)


BLOB, clock_length, text_sha = outputs(DATA)


def header():
    raise OracleChunk(f"{len(BLOB)} {clock_length} {text_sha}")
'''


def harness_test(source: str, **names: str) -> str:
    """A test that runs `source` in a namespace of its own (the program may have redefined `sum`,
    or anything else, in its own), with PROGRAM bound to the program's namespace."""
    extra = "".join(f", {key!r}: {value}" for key, value in names.items())
    return (f"import builtins as _evalplus_builtins\n"
            f"_evalplus = {{'__builtins__': _evalplus_builtins, 'PROGRAM': _evalplus_builtins.globals(){extra}}}\n"
            f"_evalplus_builtins.exec(_evalplus_builtins.compile({source!r}, '<evalplus>', 'exec'), _evalplus)\n")


CHECK_TEST = harness_test(CHECK_HARNESS, EXTRAS=repr(CHECK_EXTRAS), EXTRAS_NS="{'__builtins__': _evalplus_builtins}")
ORACLE_TEST = harness_test(ORACLE_HARNESS, DATA="_ORACLE") + "_evalplus['header']()\n"
_CHUNK_DETAIL = re.compile(r"^OracleChunk: (.*) \([^()]* line \d+\)$", re.S)


def _chunk(test: dict) -> str | None:
    match = _CHUNK_DETAIL.match(test.get("detail", "")) if test.get("status") == "error" else None
    return match.group(1) if match else None


def time_limits(times: list[float]) -> list[float]:
    return [max(MIN_TIME_LIMIT_S, TIME_LIMIT_FACTOR * t) for t in times]


def check_timeout(limits: list[float]) -> float:
    return min(MAX_CHECK_S, sum(limits)) + 1.0


def cache_root() -> Path:
    root = os.environ.get("AUTODIDACT_CACHE_DIR")
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "autodidact") / "evalplus"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def default_verify(jobs: list[dict]) -> Iterable:
    from engine.sandbox import verify_many

    return verify_many(jobs)


class PlusBenchmark(Benchmark):
    """What HumanEval+ and MBPP+ share: the data file, the oracle and its cache, the checks."""

    structural = True

    dataset: ClassVar[str]  # EvalPlus's name: "humaneval" | "mbpp"
    filename: ClassVar[str]
    parts = ("base",)
    defaults = Defaults(n=1, temperature=0.0, max_tokens=512, timeout_s=3.0)
    set_eq_tasks: ClassVar[tuple[str, ...]] = ()
    not_none_tasks: ClassVar[tuple[str, ...]] = ()
    special_tasks: ClassVar[tuple[str, ...]] = ()  # entry points with an oracle of their own (never digested)

    def __init__(self, data_dir=None, prompt: str = "", oracle_verify: Verify | None = None):
        super().__init__(data_dir, prompt)
        self.oracle_verify = oracle_verify or default_verify  # runs the oracle (checks go through the runner's)
        self._oracle: dict[str, dict] | None = None  # task id -> what `oracle` returns
        self._setups: dict[tuple[str, str], tuple[str, float]] = {}
        self._lock = threading.Lock()
        self._sha256: str | None = None

    def path(self) -> Path:
        path = self.data_dir / "evalplus" / self.filename
        if not path.is_file():
            raise FileNotFoundError(f"{self.title} not found at {path} (set AUTODIDACT_BENCHMARK_DATA to the data "
                                    f"folder)")
        return path

    def inputs(self, task_id: str, inputs: list) -> list:
        return inputs

    def load(self) -> list[Task]:
        tasks = []
        for row in read_jsonl(self.path()):
            row["base_input"] = self.inputs(row["task_id"], row["base_input"])
            row["plus_input"] = self.inputs(row["task_id"], row["plus_input"])
            tasks.append(Task(row["task_id"], row))
        return tasks

    def reference(self, task: Task) -> str | None:
        return task.data["prompt"] + task.data["canonical_solution"]

    # -- the oracle: expected outputs and reference times, from the sandbox, cached ------------
    def sha256(self) -> str:
        if self._sha256 is None:
            self._sha256 = file_sha256(self.path())
        return self._sha256

    def cache_path(self) -> Path:
        return cache_root() / f"{self.filename.split('.')[0]}-{self.sha256()}.json"

    def _read_cache(self) -> dict[str, dict]:
        try:
            saved = json.loads(self.cache_path().read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return saved.get("tasks", {}) if saved.get("sha256") == self.sha256() else {}

    def _write_cache(self, found: dict[str, dict]) -> None:
        path = self.cache_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        tasks = {**self._read_cache(), **found}  # another process may have added some meanwhile
        with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False, encoding="utf-8") as out:
            json.dump({"dataset": self.filename, "sha256": self.sha256(), "tasks": tasks}, out)
        os.replace(out.name, path)

    def oracle(self, task: Task) -> dict:
        """{"base": {"values", "digests"}, "base_time": [...], "plus": ..., "plus_time": ...}; a part the
        reference could not run has "<part>_error" (why) instead."""
        with self._lock:
            if self._oracle is None:
                self._oracle = self._read_cache()
            missing = task.task_id not in self._oracle
        if missing:
            # A first check computes every task's oracle at once (in parallel), as EvalPlus does.
            self.compute_expected()
        return self._oracle[task.task_id]

    def compute_expected(self, tasks: list[Task] | None = None) -> dict[str, str]:
        """Compute (in the sandbox) and cache the expected outputs of `tasks` (default: all) not yet
        known. Returns the tasks whose reference could not give them, with why."""
        with self._lock:
            if self._oracle is None:
                self._oracle = self._read_cache()
            tasks = tasks if tasks is not None else self.tasks()
            todo = [task for task in tasks if not _complete(self._oracle.get(task.task_id, {}))]
            if todo:
                found = compute_oracle(self, todo, self.oracle_verify)
                self._oracle.update(found)
                good = {task_id: entry for task_id, entry in found.items() if _complete(entry)}
                if good:
                    self._write_cache(good)  # failures are tried again by the next process
            return {task.task_id: "; ".join(self._oracle[task.task_id][f"{part}_error"] for part in PARTS
                                            if f"{part}_error" in self._oracle[task.task_id])
                    for task in tasks if not _complete(self._oracle.get(task.task_id, {}))}

    def oracle_data(self, task: Task) -> dict:
        """What the oracle job needs besides inputs."""
        entry = task.data["entry_point"]
        return {"entry_point": entry, "atol": task.data["atol"], "not_none": entry in self.not_none_tasks,
                "special": self.special(task), "budget": DIGEST_BUDGET}

    def special(self, task: Task) -> bool:
        """Whether EvalPlus compares this task's outputs other than by == and its tolerance."""
        return task.data["entry_point"] in self.special_tasks + self.set_eq_tasks + self.not_none_tasks

    # -- checks ----------------------------------------------------------------------------------
    def _setup(self, task: Task, part: str) -> tuple[str, float] | None:
        key = (task.task_id, part)
        if key not in self._setups:
            oracle = self.oracle(task)
            if part not in oracle:
                return None
            limits = time_limits(oracle[f"{part}_time"])
            expected = oracle[part]
            data = {"dataset": self.dataset, "part": part, "entry_point": task.data["entry_point"],
                    "atol": task.data["atol"], "inputs": task.data[f"{part}_input"],
                    "expected": data_codec.from_data(expected["values"]),
                    "digests": {int(i): value for i, value in expected["digests"].items()}, "limits": limits,
                    "set_eq": self.set_eq_tasks, "not_none": self.not_none_tasks, "special": self.special(task)}
            self._setups[key] = (NOT_MAIN + values_source("_EVALPLUS", data), check_timeout(limits))
        return self._setups[key]

    def checks(self, task: Task, program: str, timeout_s: float) -> dict[str, dict]:
        jobs = {}
        for part in PARTS:
            setup = self._setup(task, part)
            if setup is None:
                why = f"no expected outputs: {self.oracle(task)[f'{part}_error']}"
                jobs[part] = {"kind": "tests", "code": program, "tests": [f"raise RuntimeError({why[:250]!r})"]}
                continue
            source, timeout = setup
            jobs[part] = {"kind": "tests", "code": program, "setup": source, "timeout_s": timeout,
                          "tests": [CHECK_TEST, "_evalplus['check'](_EVALPLUS)"]}
        return jobs


def _complete(entry: dict) -> bool:
    return all(part in entry for part in PARTS)


def _oracle_job(benchmark: PlusBenchmark, task: Task, part: str, offset: int) -> dict:
    data = {**benchmark.oracle_data(task), "inputs": task.data[f"{part}_input"], "offset": offset, "chunk": CHUNK}
    return {"kind": "tests", "code": benchmark.reference(task), "setup": NOT_MAIN + values_source("_ORACLE", data),
            "tests": [ORACLE_TEST] + [f"_evalplus['window']({k})" for k in range(1, ORACLE_TESTS)],
            "all_tests": True, "timeout_s": ORACLE_TIMEOUT_S}


def compute_oracle(benchmark: PlusBenchmark, tasks: list[Task], verify: Verify) -> dict[str, dict]:
    """Run each task's reference on its base and plus inputs in the sandbox: task id -> entry."""
    by_id = {task.task_id: task for task in tasks}
    window = CHUNK * (ORACLE_TESTS - 1)
    pieces: dict[tuple[str, str], dict[int, str]] = {}  # (task, part) -> offset -> text
    headers: dict[tuple[str, str], tuple[int, int, str]] = {}
    errors: dict[tuple[str, str], str] = {}
    todo = [(task.task_id, part, 0) for task in tasks for part in PARTS]
    while todo:
        jobs = [{**_oracle_job(benchmark, by_id[task_id], part, offset), "id": f"{task_id}|{part}|{offset}"}
                for task_id, part, offset in todo]
        todo = []
        for verdict in verify(jobs):
            verdict = verdict if isinstance(verdict, dict) else verdict.as_dict()
            task_id, part, offset = verdict["id"].rsplit("|", 2)
            offset = int(offset)
            tests = verdict.get("tests") or []
            header = _chunk(tests[0]) if tests else None
            if header is None:
                first = tests[0]["detail"] if tests and tests[0].get("detail") else verdict.get("detail", "")
                errors.setdefault((task_id, part), f"the reference gave {verdict['status']} on the {part} inputs: "
                                                   f"{first}")
                continue
            length, clock_length, sha = header.split(" ")
            headers[(task_id, part)] = (int(length), int(clock_length), sha)
            text = "".join(_chunk(test) or "" for test in tests[1:])
            pieces.setdefault((task_id, part), {})[offset] = text
            if offset == 0:
                todo += [(task_id, part, more) for more in range(window, int(length), window)]
    found: dict[str, dict] = {task_id: {} for task_id in by_id}
    for (task_id, part), (length, clock_length, sha) in headers.items():
        if (task_id, part) in errors:
            continue
        got = pieces[(task_id, part)]
        blob = "".join(got.get(offset, "") for offset in range(0, length, window))
        values = blob[clock_length + 1:]
        if len(blob) != length or hashlib.sha256(values.encode()).hexdigest() != sha:
            errors[(task_id, part)] = f"the reference's outputs on the {part} inputs did not come back whole"
            continue
        clock = blob[:clock_length]
        found[task_id][part] = json.loads(values)
        found[task_id][f"{part}_time"] = [float(t) for t in clock.split(",")] if clock else []
    for (task_id, part), why in errors.items():
        found[task_id].pop(part, None)
        found[task_id][f"{part}_error"] = why
    return found


class HumanEvalPlus(FunctionPrompting, PlusBenchmark):
    name = "humaneval-plus"
    title = "HumanEval+"
    dataset = "humaneval"
    filename = "HumanEvalPlus.jsonl.gz"
    special_tasks = ("find_zero",)


class MbppPlus(PlusBenchmark):
    name = "mbpp-plus"
    title = "MBPP+"
    dataset = "mbpp"
    filename = "MbppPlus.jsonl.gz"
    prompts = ("instruct",)
    set_eq_tasks = ("similar_elements", "find_char_long", "common_in_nested_lists", "extract_singly", "larg_nnum",
                    "intersection_array", "find_dissimilar", "Diff")
    not_none_tasks = MBPP_OUTPUT_NOT_NONE
    special_tasks = ("are_equivalent", "sum_div", "surface_Area", "digit_distance_nums")

    def inputs(self, task_id: str, inputs: list) -> list:
        return mbpp_plus_inputs(int(task_id.split("/")[-1]), inputs)

    def prompt(self, task: Task, tokenizer) -> Prompt:
        return [{"role": "user", "content": f"{MBPP_INSTRUCTION}\n```\n{task.data['prompt'].strip()}\n```\n"}]

    def program(self, task: Task, text: str, given: Prompt) -> str | None:
        code = extract_code(text, task.data["entry_point"])
        return sanitize(code, task.data["entry_point"]) if code else None
