"""A warm sandbox worker: set up isolation once, then fork a fresh confined process per run.

Start-up (once per worker): enter new namespaces; fork the worker proper as init of the new PID
namespace; make the filesystem read-only with private tmpfs; import the runtime puzzles use.
Then, per job, every run is a fork of this clean process, so nothing one run does reaches the
next, and a fork costs about a millisecond where a fresh interpreter costs ~25 ms.

The worker talks to the service over stdin/stdout (length-prefixed JSON) and decides verdicts
from what runs send on their private pipes. It never executes untrusted code itself.
"""
from __future__ import annotations

import gc
import json
import os
import select
import signal
import sys
import time
from dataclasses import dataclass, field

from engine.sandbox import child, data_codec, framing, isolation, linux
from engine.sandbox.analysis import PuzzleFormError, analyse_puzzle, compile_source
from engine.sandbox.answer_types import describe, describe_value_type, matches
from engine.sandbox.assertions import plan_test
from engine.sandbox.jobs import NOT_RUN
from engine.sandbox.limits import Limits
from engine.sandbox.verdict import (
    ERROR,
    FAILED,
    MEMORY_EXCEEDED,
    OUTPUT_EXCEEDED,
    PASSED,
    REJECTED,
    TIMEOUT,
    short,
)

# Modules puzzles and tests commonly use, imported once so each fork starts warm.
# Every module held here makes each fork slower (measured: ~0.07 ms per MB of heap), so this is
# the short list most P3 puzzles and MBPP solutions use; others import in the run as usual.
PRELOAD = ("typing", "math", "re", "itertools", "collections", "functools", "heapq", "bisect", "string", "json")
OUTPUT_KEEP = 2000
TRUSTED_INT_DIGITS = 100_000
MEMORY_HINTS = ("MemoryError", "Cannot allocate memory", "out of memory")


@dataclass
class RunOutcome:
    records: list[dict] = field(default_factory=list)
    ended: str = "exited"  # exited | timeout | output | records | malformed | stopped
    exit_code: int | None = None
    signal: int | None = None
    output: bytearray = field(default_factory=bytearray)
    output_size: int = 0
    seconds: float = 0.0

    def first(self, *kinds: str) -> dict | None:
        return next((r for r in self.records if r.get("kind") in kinds), None)

    @property
    def done(self) -> bool:
        return any(r.get("kind") == "done" for r in self.records)

    def output_tail(self) -> str:
        return self.output.decode("utf-8", "replace")[-300:]


class Worker:
    def __init__(self, level: str, uid: int | None, own_pid_namespace: bool, problems: list[str]):
        self.level = level
        self.uid = uid
        self.own_pid_namespace = own_pid_namespace
        self.report = isolation.report_for(level, problems)
        if own_pid_namespace:
            self.tmp_root = "/tmp"
        else:
            import tempfile

            self.tmp_root = tempfile.mkdtemp(prefix="autodidact-sandbox-")
        self.run_dir = os.path.join(self.tmp_root, "run")
        self.spare = tuple(isolation.preserved_runtime_paths()) if own_pid_namespace else ()
        isolation.prepare_run_dir(self.run_dir, uid)
        isolation.set_run_environment(self.run_dir)

    # -- one run ---------------------------------------------------------------------------
    def run(self, task: dict, limits: Limits, on_record=None) -> RunOutcome:
        """Fork, confine, run `task` in the child; collect its records and output under limits."""
        result_r, result_w = os.pipe()
        output_r, output_w = os.pipe()
        started = time.monotonic()
        pid = os.fork()
        if pid == 0:  # the run
            try:
                os.close(result_r)
                os.close(output_r)
                isolation.confine_run(result_w, output_w, limits, self.run_dir, self.uid, self.own_pid_namespace)
                child.main_for(task)
            finally:
                os._exit(70)
        os.close(result_w)
        os.close(output_w)
        outcome = RunOutcome()
        try:
            self._watch(pid, result_r, output_r, limits, started, outcome, on_record)
        finally:
            os.close(result_r)
            os.close(output_r)
            self._end(pid, outcome)
            outcome.seconds = time.monotonic() - started
        return outcome

    def _watch(self, pid, result_r, output_r, limits, started, outcome, on_record) -> None:
        """Until the run exits, breaks a limit, or `on_record` says stop.

        Plain epoll rather than `selectors`: every Python function the worker calls while a run
        lives writes to pages the fork shared, each a copy-on-write fault (see sandbox_profile).
        """
        reader = framing.FrameReader(limits.answer_bytes, limits.answer_bytes + 65536)
        names = {result_r: "result", output_r: "output"}
        deadline = started + limits.wall_s
        pidfd = os.pidfd_open(pid)
        poller = select.epoll(3)
        try:
            for fd in (result_r, output_r, pidfd):
                poller.register(fd, select.EPOLLIN)
            exited = False
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    outcome.ended = "timeout"
                    return
                for fd, _ in poller.poll(left):
                    if fd == pidfd:
                        exited = True
                        continue
                    chunk = os.read(fd, 1 << 16)
                    if not chunk:
                        poller.unregister(fd)
                        del names[fd]
                    elif not self._take(names[fd], chunk, reader, outcome, limits):
                        return
                if exited:  # take what is already in the pipes; leftovers may hold them open
                    for fd, name in list(names.items()):
                        if not self._drain(fd, name, reader, outcome, limits):
                            return
                while reader.messages:
                    record = reader.messages.popleft()
                    outcome.records.append(record)
                    if on_record is not None and on_record(record) is False:
                        outcome.ended = "stopped"
                        return
                if exited:
                    return
        finally:
            poller.close()
            os.close(pidfd)

    def _drain(self, fd, name, reader, outcome, limits) -> bool:
        os.set_blocking(fd, False)
        while True:
            try:
                chunk = os.read(fd, 1 << 16)
            except BlockingIOError:
                return True
            if not chunk:
                return True
            if not self._take(name, chunk, reader, outcome, limits):
                return False

    @staticmethod
    def _take(name, chunk, reader, outcome, limits) -> bool:
        """Account for one chunk. False means a limit or the protocol was broken: stop the run."""
        if name == "output":
            outcome.output_size += len(chunk)
            if len(outcome.output) < OUTPUT_KEEP:
                outcome.output += chunk[: OUTPUT_KEEP - len(outcome.output)]
            if outcome.output_size > limits.output_bytes:
                outcome.ended = "output"
                return False
            return True
        try:
            reader.feed(chunk)
        except framing.FrameError as exc:
            outcome.ended = "records" if "bytes" in str(exc) else "malformed"
            return False
        return True

    def _end(self, pid: int, outcome: RunOutcome) -> None:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        _, status = os.waitpid(pid, 0)
        if os.WIFSIGNALED(status):
            outcome.signal = os.WTERMSIG(status)
        else:
            outcome.exit_code = os.WEXITSTATUS(status)
        isolation.kill_leftovers(pid, self.own_pid_namespace)
        isolation.wipe(self.tmp_root, keep=self.run_dir, spare=self.spare)

    # -- verdicts --------------------------------------------------------------------------
    def verify(self, job: dict, limits: Limits) -> dict:
        if job["kind"] == "puzzle":
            return self.verify_puzzle(job, limits)
        return self.verify_tests(job, limits)

    def verify_puzzle(self, job: dict, limits: Limits) -> dict:
        try:
            spec = analyse_puzzle(job["sat"], job["sol"])
        except SyntaxError as exc:
            return _static(ERROR, f"syntax error in {(exc.filename or '').strip('<>')} line {exc.lineno}: {exc.msg}")
        except (PuzzleFormError, RecursionError, MemoryError, ValueError) as exc:
            return _static(REJECTED, str(exc) or type(exc).__name__)

        solved = self.run({"kind": "solve", "sat": spec.sat_code, "sol": spec.sol_code, "sol_name": spec.sol_name},
                          limits)
        record = solved.first("answer", "unencodable", "error")
        if record is None or record["kind"] == "error":
            return _from_failed_run(solved, record, limits, "the solution")
        if record["kind"] == "unencodable":
            return _verdict(FAILED, f"the answer is not plain data: {record['message']}")
        try:
            answer = data_codec.loads_shape(record["data"])
        except (ValueError, KeyError, TypeError):
            return _verdict(ERROR, "the solution's run sent a malformed answer")
        if not matches(answer, spec.answer_type):
            return _verdict(FAILED, f"the answer has type {describe_value_type(answer)}, "
                                    f"expected exactly {describe(spec.answer_type)}")

        checked = self.run({"kind": "check", "sat": spec.sat_code, "sat_name": spec.sat_name,
                            "answer": record["data"]}, limits)
        result = checked.first("sat", "error")
        if result is None or result["kind"] == "error":
            return _from_failed_run(checked, result, limits, f"{spec.sat_name}(answer)")
        if result.get("is_true") is True:
            return _verdict(PASSED, f"{spec.sat_name}(answer) is True")
        return _verdict(FAILED, f"{spec.sat_name}(answer) returned {result.get('shown', '?')}, not True")

    def verify_tests(self, job: dict, limits: Limits) -> dict:
        compiled = {}
        for name in ("setup", "code"):
            try:
                compiled[name] = compile_source(job[name], name) if job[name] or name == "code" else None
            except SyntaxError as exc:
                return _static(ERROR, f"syntax error in {name} line {exc.lineno}: {exc.msg}")
            except (RecursionError, MemoryError, ValueError) as exc:
                return _static(REJECTED, f"{name} cannot be parsed: {type(exc).__name__}")
        plans = []
        for index, source in enumerate(job["tests"]):
            try:
                plans.append(plan_test(source))
            except (SyntaxError, RecursionError, MemoryError, ValueError):
                return _static(ERROR, f"test {index + 1} is not valid Python: {short(source, 120)}")
        results = [{"test": short(p.source, 300), "status": "not run", "detail": ""} for p in plans]
        stop_early = not job.get("all_tests", False)

        def judge(record: dict):
            if record.get("kind") != "test" or not isinstance(record.get("i"), int) \
                    or not 0 <= record["i"] < len(plans) or results[record["i"]]["status"] != "not run":
                return None
            status, detail = _judge_test(plans[record["i"]], record)
            results[record["i"]].update(status=status, detail=short(detail, 300))
            return False if (stop_early and status != PASSED) else None

        outcome = self.run({"kind": "tests", "setup": compiled["setup"], "code": compiled["code"],
                            "plans": [p.for_run() for p in plans]}, limits, on_record=judge)
        code_error = outcome.first("error")
        if code_error is not None:
            verdict = _from_failed_run(outcome, code_error, limits, "the code")
            verdict["tests"] = results
            return verdict
        ended_early = None if outcome.done else _from_failed_run(outcome, None, limits, "the tests")
        running = next((i for i, r in enumerate(results) if r["status"] == "not run"), None)
        if ended_early is not None and running is not None and not (stop_early and _any_bad(results)):
            # The run stopped inside this test (timeout, memory, crash): say so on its row.
            detail = "did not finish in time" if ended_early["status"] == TIMEOUT else ended_early["detail"]
            results[running].update(status=ended_early["status"], detail=short(detail, 300))
        first_bad = next((r for r in results if r["status"] not in (PASSED, "not run")), None)
        if first_bad is not None:
            number = results.index(first_bad) + 1
            status = FAILED if first_bad["status"] == FAILED else first_bad["status"]
            return _verdict(status, f"test {number} {first_bad['status']}: {first_bad['detail']}", results)
        if outcome.done and all(r["status"] == PASSED for r in results):
            return _verdict(PASSED, f"{len(results)} of {len(results)} tests passed", results)
        verdict = ended_early or _from_failed_run(outcome, None, limits, "the tests")
        verdict["tests"] = results
        return verdict


def _any_bad(results: list[dict]) -> bool:
    return any(r["status"] not in (PASSED, "not run") for r in results)


def _verdict(status: str, detail: str, tests: list | None = None) -> dict:
    return {"status": status, "detail": short(detail), "tests": tests or []}


def _static(status: str, detail: str) -> dict:
    """A verdict reached by reading the sources, before anything ran."""
    return {**_verdict(status, detail), "isolation": NOT_RUN}


def _describe_exception(record: dict) -> str:
    where = f" ({record['where']} line {record['line']})" if record.get("line") else ""
    message = f": {record['message']}" if record.get("message") else ""
    return f"{record.get('type', 'Error')}{message}{where}"


def _from_failed_run(outcome: RunOutcome, record: dict | None, limits: Limits, who: str) -> dict:
    """Status for a run that did not deliver what it should have. Never `passed`."""
    if record is not None and record.get("kind") == "error":
        if record.get("type") == "MemoryError":
            return _verdict(MEMORY_EXCEEDED, f"{who} ran out of memory (limit {limits.memory_mb} MB)")
        if record.get("type") in ("SystemExit", "KeyboardInterrupt"):
            return _verdict(ERROR, f"{who} exited early: {record.get('message')}")
        return _verdict(ERROR, f"{who} raised {_describe_exception(record)}")
    if outcome.ended in ("timeout", "stopped") or outcome.signal == signal.SIGXCPU:
        return _verdict(TIMEOUT, f"{who} did not finish within {limits.wall_s:g} s")
    if outcome.ended == "output":
        return _verdict(OUTPUT_EXCEEDED, f"{who} printed more than {limits.output_bytes:,} bytes")
    if outcome.ended == "records":
        return _verdict(OUTPUT_EXCEEDED, f"{who} produced a value larger than {limits.answer_bytes:,} bytes")
    if outcome.ended == "malformed":
        return _verdict(ERROR, f"{who} wrote malformed data on the result channel")
    tail = outcome.output_tail()
    if outcome.signal is not None:
        name = signal.Signals(outcome.signal).name
        if any(hint in tail for hint in MEMORY_HINTS):
            return _verdict(MEMORY_EXCEEDED, f"{who} ran out of memory (limit {limits.memory_mb} MB; {name})")
        if outcome.signal == signal.SIGXFSZ:
            return _verdict(ERROR, f"{who} wrote a file larger than {limits.file_mb} MB")
        return _verdict(ERROR, f"{who} crashed ({name})")
    if any(hint in tail for hint in MEMORY_HINTS):
        return _verdict(MEMORY_EXCEEDED, f"{who} ran out of memory (limit {limits.memory_mb} MB)")
    if outcome.exit_code == isolation.RESULT_CHANNEL_LOST:
        return _verdict(ERROR, f"{who} closed the sandbox's result channel (file descriptor "
                               f"{isolation.RESULT_FD}), so no result could be reported")
    return _verdict(ERROR, f"{who} exited before finishing (exit code {outcome.exit_code})")


def _shown(value) -> str:
    try:
        return short(repr(value), 120)
    except RecursionError:
        return "(too deep to show)"


def _judge_test(plan, record: dict) -> tuple[str, str]:
    if "error" in record:
        error = record["error"]
        if error.get("type") == "MemoryError":
            return MEMORY_EXCEEDED, "ran out of memory"
        return ERROR, _describe_exception(error)
    if "assertion" in record:
        return FAILED, f"{plan.source}" + (f" ({record['assertion'].get('message')})"
                                           if record["assertion"].get("message") else "")
    if "unencodable" in record:
        return FAILED, f"{plan.source}: {record['unencodable']}"
    if not plan.split:
        return (PASSED, "") if record.get("ok") is True else (ERROR, "malformed test record")
    try:
        value = data_codec.loads(record["value"])
        expected = plan.literal if plan.has_literal else data_codec.loads(record["expected"])
    except (KeyError, TypeError, ValueError):
        return ERROR, "malformed test record"
    try:
        equal = value == expected  # both are fresh builtin values: a rigged __eq__ cannot be here
    except RecursionError:
        equal = False
    if equal is True:
        return PASSED, ""
    return FAILED, f"{plan.source} (got {_shown(value)})"


# -- process entry -------------------------------------------------------------------------
def _serve(worker: Worker, control_in: int, control_out: int) -> None:
    reader = framing.FrameReader(max_message=64 << 20)
    framing.write_message(control_out, {"hello": worker.report.as_dict(), "pid": os.getpid()})
    while True:
        message = reader.read_message(control_in)
        if message is None:
            return
        if message.get("op") == "ping":
            framing.write_message(control_out, {"pong": True})
            continue
        try:
            verdict = worker.verify(message["job"], Limits(**message.get("limits", {})))
        except Exception:  # a bug of ours must not take the worker down or pass a job
            import traceback

            traceback.print_exc()
            verdict = {**_verdict(ERROR, "internal sandbox error (see the worker log)"), "no_cache": True}
        framing.write_message(control_out, {"verdict": verdict})


WARM_UP_ROUNDS = 64


def warm_run_paths() -> None:
    """Run the code every run executes (reporting, encoding, the three run kinds) here, on our
    own trusted inputs, until CPython has specialised it.

    Code that first runs inside a fork writes its warm-up counters and inline caches there, and
    every page a run writes is a copy-on-write fault (measured 5-7 us each on this kind of VM).
    Warming it once in the worker saves each run about 35 faults (benchmarks/sandbox_profile.py).
    """
    sink = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(sink, isolation.RESULT_FD)  # where the runs' records would go
    except OSError:  # a descriptor limit under RESULT_FD: runs raise it for themselves; skip the warm-up
        return
    finally:
        os.close(sink)
    try:
        spec = analyse_puzzle("def sat(x: int):\n    return x * x == 49\n", "def sol():\n    return 7\n")
        code = compile_source("def f(x):\n    return [x, {'a': (x, 1.5)}]\n", "code")
        plans = [plan_test(source).for_run() for source in
                 ("assert f(1) == [1, {'a': (1, 1.5)}]", "assert f(2)[0] == 3", "assert g(1)", "assert f(3)")]
        for _ in range(WARM_UP_ROUNDS):
            child.solve(spec.sat_code, spec.sol_code, spec.sol_name)
            child.check(spec.sat_code, spec.sat_name, data_codec.dumps(7))
            child.run_tests(None, code, plans)
    finally:
        os.close(isolation.RESULT_FD)


def prepare(plan: isolation.WorkerPlan, launcher_closes: tuple[int, ...] = ()) -> Worker:
    """Everything a worker does once, before its first run. Returns in the worker proper (the
    PID namespace's init where namespaces are permitted); the launcher above it never returns."""
    linux.set_parent_death_signal(signal.SIGKILL)
    # As a PID namespace's init, with the uid it shares with runs in the `namespaces` level,
    # a run could interrupt us; runs inherit this and do not need SIGINT either.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    level = isolation.enter_namespaces(plan.level)
    problems: list[str] = []
    own_pid_namespace = level != "rlimits"
    if own_pid_namespace:
        init = os.fork()
        if init:  # the launcher: stay out of the way, exit with the worker
            for fd in launcher_closes:
                os.close(fd)
            _, status = os.waitpid(init, 0)
            os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
        linux.set_parent_death_signal(signal.SIGKILL)
        problems = isolation.setup_filesystem(plan)
    # Values compared here may hold big ints; bound their decoding (runs themselves have no limit).
    sys.set_int_max_str_digits(TRUSTED_INT_DIGITS)
    for name in PRELOAD:
        __import__(name)
    warm_run_paths()
    gc.collect()
    gc.freeze()  # keep the warm heap shared between forks
    linux.set_no_new_privs()  # inherited by every run: no setuid binary can raise privileges
    uid = plan.uid if level == "namespaces+uid" else None
    return Worker(level, uid, own_pid_namespace, problems)


def main(argv: list[str] | None = None) -> None:
    plan = isolation.WorkerPlan(**json.loads((argv or sys.argv)[1]))
    control_in, control_out = 0, os.dup(1)
    os.dup2(2, 1)  # anything printed by accident goes to the log, never into the protocol
    _serve(prepare(plan, (control_in, control_out)), control_in, control_out)

if __name__ == "__main__":
    main()
