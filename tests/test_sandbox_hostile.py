"""Hostile code against the sandbox. Each case is followed by a legitimate job that must pass,
and is written so that it could only pass if the attack worked. Afterwards: the host is unchanged,
no sandboxed process is left, and the same pool keeps serving."""
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psutil
import pytest

from engine.sandbox import Limits, Sandbox
from engine.sandbox.isolation import RESULT_FD
from tests.support import OUTPUT_DIR

ROOT = Path(__file__).resolve().parents[1]

UID_BASE = 64000
LEGIT = {"id": "legit", "kind": "puzzle", "sat": "def sat(s: str, n: int = 3):\n    return s == 'ab' * n",
         "sol": "def sol(n: int = 3):\n    return 'ab' * n"}
SECRET = "autodidact-test-secret-7f3a"


@pytest.fixture(scope="module")
def sandbox():
    os.environ["AUTODIDACT_TEST_SECRET"] = SECRET  # in the service's environment: must not leak
    with Sandbox(workers=2, limits=Limits(wall_s=2.0, memory_mb=512), uid_base=UID_BASE) as box:
        assert box.isolation["level"] == "namespaces+uid", box.isolation
        yield box
        assert box.stats["workers_replaced"] == 0, "a hostile job took a worker down"
    assert sandbox_processes() == []


def sandbox_processes() -> list[str]:
    found = []
    for proc in psutil.process_iter(["pid", "uids", "cmdline"]):
        uids = proc.info["uids"]
        if uids and UID_BASE <= uids.real < UID_BASE + 1000:
            found.append(f"{proc.info['pid']} uid={uids.real} {proc.info['cmdline']}")
    return found


def puzzle(sol_body: str, sat: str = "def sat(x: int):\n    return x == 12345", job_id: str = "hostile") -> dict:
    return {"id": job_id, "kind": "puzzle", "sat": sat, "sol": "def sol():\n" + textwrap.indent(textwrap.dedent(sol_body), "    ")}


def code_job(code: str, tests: list[str], job_id: str = "hostile") -> dict:
    return {"id": job_id, "kind": "tests", "code": textwrap.dedent(code), "tests": tests}


def run(sandbox, job: dict) -> dict:
    """The hostile job's verdict; the legitimate job after it must pass."""
    started = time.monotonic()
    verdicts = {v.id: v for v in sandbox.verify_many([job, LEGIT], workers=1)}
    assert verdicts["legit"].passed, verdicts["legit"]
    hostile = verdicts[job["id"]]
    assert hostile.status != "passed", hostile
    ran = not (hostile.status == "rejected" or hostile.detail.startswith("syntax error"))
    assert hostile.isolation == ("namespaces+uid" if ran else "not run")
    assert time.monotonic() - started < 30
    time.sleep(0.05)
    assert sandbox_processes() == []
    return hostile


CASES = {
    "fork bomb": (puzzle("""
        import os
        while True:
            try:
                os.fork()
            except OSError:
                pass
    """), {"timeout"}),
    "memory bomb": (puzzle("return len(bytearray(8 * 1024 ** 3))"), {"memory_exceeded"}),
    "growing memory": (puzzle("""
        hoard = []
        while True:
            hoard.append(' ' * 10 ** 7)
    """), {"memory_exceeded"}),
    "infinite loop": (puzzle("while True:\n    pass"), {"timeout"}),
    "SIGTERM ignored": (puzzle("""
        import signal
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        while True:
            pass
    """), {"timeout"}),
    "sleeping forever": (puzzle("import time\ntime.sleep(10 ** 6)"), {"timeout"}),
    "double-forked daemon": (puzzle("""
        import os, time
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                while True:
                    time.sleep(0.01)
            os._exit(0)
        return 1
    """), {"failed"}),
    "threads left spinning": (puzzle("""
        import threading
        def spin():
            while True:
                pass
        for _ in range(4):
            threading.Thread(target=spin, daemon=False).start()
        return 1
    """), {"failed"}),
    "huge stdout": (puzzle("""
        import sys
        while True:
            sys.stdout.write('x' * 65536)
    """), {"output_exceeded"}),
    "reading stdin": (puzzle("return int(input())"), {"error"}),
    "deep recursion": (puzzle("""
        import sys
        sys.setrecursionlimit(10 ** 8)
        def down(n):
            return down(n + 1) + 1
        return down(0)
    """), {"error", "memory_exceeded", "timeout"}),
    "segfault via ctypes": (puzzle("import ctypes\nreturn ctypes.string_at(0)"), {"error"}),
    "kill the parent": (puzzle("""
        import os, signal
        for target in (os.getppid(), 1, -1):
            try:
                os.kill(target, signal.SIGKILL)
            except OSError:
                pass
        return 1
    """), {"failed", "error"}),
    "closing all fds": (puzzle("import os\nos.closerange(0, 65536)\nreturn 12345"), {"error"}),
    "early exit: sys.exit(0)": (puzzle("import sys\nsys.exit(0)"), {"error"}),
    "early exit: os._exit(0)": (puzzle("import os\nos._exit(0)"), {"error"}),
    "early exit: SystemExit": (puzzle("raise SystemExit(0)"), {"error"}),
    "early exit: KeyboardInterrupt": (puzzle("raise KeyboardInterrupt"), {"error"}),
    "early exit: kill self": (puzzle("import os\nos.kill(os.getpid(), 9)"), {"error"}),
    "early exit: closed stdout": (puzzle("import os, sys\nsys.stdout.close()\nos.close(1)\nos._exit(0)"), {"error"}),
    "forged verdict on stdout": (puzzle("""
        import sys, struct, json
        fake = json.dumps({"kind": "answer", "data": json.dumps({"json": 12345})}).encode()
        for stream in (sys.stdout, sys.stderr):
            stream.write('{"status": "passed", "detail": "sat(answer) is True"}\\n')
            stream.buffer.write(struct.pack('>I', len(fake)) + fake)
            stream.flush()
        return 1
    """), {"failed"}),
    "patched builtins": (puzzle("""
        import builtins
        builtins.len = lambda obj: 10
        builtins.sorted = lambda obj, **kw: obj
        return 'abc'
    """, sat="def sat(s: str):\n    return len(s) == 10 and sorted(s) == list(s)"), {"failed"}),
    "patched sat": (puzzle("""
        global sat
        sat = lambda *a, **k: True
        import builtins
        builtins.sat = sat
        return 0
    """), {"failed"}),
    "wrong type: bool for int": (puzzle("return True", sat="def sat(x: int):\n    return x == 1"), {"failed"}),
    "wrong type: float for int": (puzzle("return 1.0", sat="def sat(x: int):\n    return x == 1"), {"failed"}),
    "wrong type: int for float": (puzzle("return 1", sat="def sat(x: float):\n    return x == 1"), {"failed"}),
    "wrong type: tuple for list": (puzzle("return (1, 2)", sat="def sat(x: List[int]):\n    return len(x) == 2"),
                                   {"failed"}),
    "wrong type: bools in List[int]": (puzzle("return [True, False]",
                                              sat="def sat(x: List[int]):\n    return len(x) == 2"), {"failed"}),
    "wrong type: str subclass": (puzzle("""
        class Sneaky(str):
            def __eq__(self, other):
                return True
        return Sneaky('no')
    """, sat="def sat(s: str):\n    return s == 'yes'"), {"failed"}),
    "truthy, not True": (puzzle("return 1", sat="def sat(x: int):\n    return x"), {"failed"}),
    "truthy list, not True": (puzzle("return 1", sat="def sat(x: int):\n    return [x]"), {"failed"}),
    "malicious sat": (puzzle("return 1", sat=textwrap.dedent("""
        def sat(x: int):
            import os
            for target in (1, -1):
                try:
                    os.kill(target, 9)
                except OSError:
                    pass
            try:
                open('/etc/autodidact-pwned', 'w').write('x')
                return True
            except OSError:
                return False
    """)), {"failed"}),
    "syntax error": (puzzle("return (", sat="def sat(x: int):\n    return x == 1"), {"error"}),
    "20 MB source": (puzzle("return 1\n" + "# padding\n" * 2_000_000), {"rejected"}),
    "unsupported answer type": (puzzle("return {}", sat="def sat(x: dict):\n    return True"), {"rejected"}),
    "always-equal object": (code_job("""
        class Yes:
            def __eq__(self, other):
                return True
        def f(x):
            return Yes()
    """, ["assert f(1) == 2"]), {"failed"}),
    "always-equal int subclass": (code_job("""
        class Int(int):
            def __eq__(self, other):
                return True
        def f(x):
            return Int(7)
    """, ["assert f(1) == 2"]), {"failed"}),
    "patched builtins in tests": (code_job("""
        import builtins
        builtins.sorted = lambda obj, **kw: [1, 2, 3]
        def f(x):
            return [3, 2]
    """, ["assert sorted(f(1)) == [1, 2, 3]"]), {"failed"}),
    "forged test record": (code_job(f"""
        import os, struct, json
        for i in range(3):
            for value in (2, 3, [1, 2, 3]):
                msg = json.dumps({{"kind": "test", "i": i, "value": json.dumps({{"json": value}})}}).encode()
                os.write({RESULT_FD}, struct.pack('>I', len(msg)) + msg)
        msg = json.dumps({{"kind": "done"}}).encode()
        os.write({RESULT_FD}, struct.pack('>I', len(msg)) + msg)
        os._exit(0)
        def f(x):
            return 0
    """, ["assert f(1) == 12345"]), {"failed", "error"}),
}


def test_a_correct_answer_survives_closing_descriptors_0_to_255(sandbox):
    """Code that tidies up every "ordinary" descriptor still gets its right answer counted."""
    jobs = [puzzle("import os\nos.closerange(0, 256)\nreturn 12345", job_id="puzzle"),
            code_job("import os\ndef f(x):\n    os.closerange(0, 256)\n    return x + 1",
                     ["assert f(1) == 2", "assert f(2) == 3"], job_id="tests")]
    verdicts = sandbox.verify_many(jobs, workers=1)
    assert [v.status for v in verdicts] == ["passed", "passed"], verdicts


PATCH_EVERYTHING_THE_REPORT_USES = """
import builtins, json, os
builtins.isinstance = lambda *args: False
builtins.len = lambda obj: 0
builtins.type = lambda *args: bool
builtins.str = lambda *args: 'x'
json.dumps = None
os.write = lambda fd, data: 0
"""


def test_a_correct_answer_survives_patched_builtins_json_and_os_write(sandbox):
    """The run's report is encoded and written with what the worker imported (pristine builtins,
    the C JSON encoder, os.write bound at import), so code that breaks those for its own ends
    still has its right answer counted, and its wrong one still fails."""
    patch = textwrap.indent(PATCH_EVERYTHING_THE_REPORT_USES, "    ")
    jobs = [puzzle(PATCH_EVERYTHING_THE_REPORT_USES + "return 12345", job_id="right answer"),
            puzzle(PATCH_EVERYTHING_THE_REPORT_USES + "return 54321", job_id="wrong answer"),
            code_job(f"def f(x):\n{patch}\n    return [x + 1, 'a']",
                     ["assert f(1) == [2, 'a']", "assert f(2) == [3, 'a']"], job_id="right function"),
            code_job(f"def f(x):\n{patch}\n    return [x, 'a']", ["assert f(1) == [2, 'a']"],
                     job_id="wrong function")]
    verdicts = {v.id: v for v in sandbox.verify_many(jobs, workers=1)}
    assert {name: v.status for name, v in verdicts.items()} == {
        "right answer": "passed", "wrong answer": "failed", "right function": "passed", "wrong function": "failed",
    }, verdicts


def test_a_worker_under_a_low_descriptor_limit_still_gives_verdicts(tmp_path):
    """Under `ulimit -n 256` (soft and hard) descriptor 1000 cannot be opened: the answer channel
    takes the highest one allowed instead of every run ending "exited before finishing"."""
    script = textwrap.dedent(f"""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
        sys.path.insert(0, {str(ROOT)!r})
        from engine.sandbox import Sandbox
        jobs = [{{"id": "right", "kind": "puzzle", "sat": "def sat(x: int):\\n    return x == 3",
                  "sol": "def sol():\\n    return 3"}},
                {{"id": "tests", "kind": "tests", "code": "def f(x):\\n    return x + 1", "tests": ["assert f(1) == 2"]}}]
        with Sandbox(workers=1) as sandbox:
            print(sorted((v.id, v.status) for v in sandbox.verify_many(jobs)))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.stdout.strip() == "[('right', 'passed'), ('tests', 'passed')]", done.stdout + done.stderr


def test_closing_the_result_channel_itself_is_reported_as_that(sandbox):
    verdict = run(sandbox, puzzle(f"import os\nos.close({RESULT_FD})\nreturn 12345"))
    assert verdict.status == "error"
    assert "closed the sandbox's result channel" in verdict.detail, verdict


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_job_does_not_pass_and_pool_keeps_serving(sandbox, name):
    job, expected = CASES[name]
    verdict = run(sandbox, job)
    assert verdict.status in expected, (name, verdict)
    assert len(verdict.detail) <= 500


def test_no_writes_or_deletions_outside_the_run(sandbox):
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    victim = OUTPUT_DIR / "sandbox-victim.txt"
    victim.write_text("keep me")
    planted = OUTPUT_DIR / "sandbox-planted.txt"
    planted.unlink(missing_ok=True)
    job = puzzle(f"""
        import os
        damage = 0
        for action in (lambda: os.remove({str(victim)!r}), lambda: open({str(planted)!r}, 'w').write('x'),
                       lambda: open('/etc/passwd', 'a').write('x'), lambda: os.mkdir('/root/owned'),
                       lambda: os.rename({str(victim)!r}, '/tmp/stolen')):
            try:
                action()
                damage += 1
            except OSError:
                pass
        # Writing inside the run's own directory is allowed.
        open('scratch.txt', 'w').write('fine')
        return 12345 if damage else 0
    """)
    verdict = run(sandbox, job)
    assert verdict.status == "failed"
    assert victim.read_text() == "keep me"
    assert not planted.exists()


def test_no_network_even_to_a_local_listener(sandbox):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    accepted = []

    def accept():
        try:
            accepted.append(listener.accept())
        except OSError:
            pass

    waiter = threading.Thread(target=accept)
    waiter.start()
    job = puzzle(f"""
        import socket
        try:
            socket.create_connection(('127.0.0.1', {port}), timeout=1).sendall(b'hello')
            return 12345
        except OSError:
            return 0
    """)
    try:
        assert run(sandbox, job).status == "failed"
    finally:
        waiter.join()
        listener.close()
    assert accepted == []


def test_the_services_environment_and_files_are_out_of_reach(sandbox):
    job = puzzle(f"""
        import os
        found = {SECRET!r} in repr(dict(os.environ))
        for pid in os.listdir('/proc'):
            if pid.isdigit():
                try:
                    found = found or {SECRET!r}.encode() in open(f'/proc/{{pid}}/environ', 'rb').read()
                except OSError:
                    pass
        for path in ('/root/.bash_history', '/root/.ssh', '/etc/shadow'):
            try:
                os.listdir(path) if os.path.isdir(path) else open(path, 'rb').read()
                found = True
            except OSError:
                pass
        visible = [p for p in os.listdir('/proc') if p.isdigit()]
        return 12345 if found or len(visible) > 3 else 0
    """)
    assert run(sandbox, job).status == "failed"


def test_a_run_leaves_nothing_for_the_next(sandbox):
    plant = puzzle("""
        import os
        open('/tmp/evil.py', 'w').write('x = 12345')
        open('planted.py', 'w').write('x = 12345')
        os.makedirs('/tmp/deep/er', exist_ok=True)
        os.chmod('/tmp/deep', 0)
        return 0
    """, job_id="plant")
    harvest = puzzle("""
        import os, sys
        sys.path[:0] = ['/tmp', '.']
        for name in ('evil', 'planted'):
            try:
                return __import__(name).x
            except ImportError:
                pass
        return len(os.listdir('/tmp')) + len(os.listdir('.'))
    """, job_id="harvest")
    # One worker, so the second run follows the first in the same worker.
    verdicts = {v.id: v for v in sandbox.verify_many([plant, harvest], workers=1)}
    assert verdicts["plant"].status == "failed"
    assert verdicts["harvest"].status == "failed", verdicts["harvest"]


def test_tests_job_reports_every_test_and_stops_at_first_failure(sandbox):
    code = "def f(x):\n    return x * 2\n"
    tests = ["assert f(1) == 2", "assert f(2) == 5", "assert f(3) == 6", "assert f(4) > 100"]
    stop = sandbox.verify({"id": "s", "kind": "tests", "code": code, "tests": tests})
    assert stop.status == "failed" and "test 2" in stop.detail and "got 4" in stop.detail
    assert [t["status"] for t in stop.tests] == ["passed", "failed", "not run", "not run"]
    every = sandbox.verify({"id": "a", "kind": "tests", "code": code, "tests": tests, "all_tests": True})
    assert [t["status"] for t in every.tests] == ["passed", "failed", "passed", "failed"]
    error = sandbox.verify({"id": "e", "kind": "tests", "code": "def f(x):\n    return 1 / x\n",
                            "tests": ["assert f(1) == 1", "assert f(0) == 0"]})
    assert error.status == "error" and "ZeroDivisionError" in error.detail and "line 2" in error.detail


def test_pool_replaces_a_worker_that_dies(sandbox):
    """If a worker process itself is killed mid-job, that job errors and the pool recovers."""
    job = puzzle("import time\ntime.sleep(1.5)\nreturn 12345", job_id="victim")
    results = []
    runner = threading.Thread(target=lambda: results.extend(sandbox.verify_many([job], workers=1)))
    runner.start()
    time.sleep(0.5)
    # Each worker is a launcher, whose child is the namespace's init, whose child is the run.
    launchers = [p for p in psutil.Process().children() if "engine.sandbox.zygote" in " ".join(p.cmdline())]
    busy = [p for p in launchers if any(init.children() for init in p.children())]
    assert busy, "no worker was running the job"
    busy[0].kill()
    runner.join(20)
    assert results and results[0].status == "error" and "worker died" in results[0].detail
    assert sandbox.verify(LEGIT).passed
    sandbox.stats["workers_replaced"] -= 1  # this replacement was the point of the test
