"""PostgreSQL restarted in the middle of a run: the run ends failed with the reason (recorded on a
new connection once the server is back), what it had stored is whole, and a resume finishes it
without repeating a stored row. The server is a PostgreSQL cluster of the test's own (initdb on
a free port), so the suite's database is never restarted; the run is a trace run in a process of
its own, as on a worker, with a scripted teacher that answers with MBPP's reference programs."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from tests.support import ROOT, free_port

pytestmark = pytest.mark.timeout(300)

RUN = textwrap.dedent("""
    import json, sys, time
    import django
    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from engine.datasets.mbpp import load_mbpp
    from engine.lm.generation import Completion
    from webapp.distill import trace_runs
    from webapp.distill.models import TraceRun

    TASKS = load_mbpp(settings.AUTODIDACT_BENCHMARK_DATA)

    class ReferenceTeacher:
        name = "reference teacher"

        def __init__(self, pause_s):
            self.pause_s = pause_s

        def sample_many(self, prompts, n, params, cancel=None):
            time.sleep(self.pause_s)
            answers = []
            for prompt in prompts:
                task = next(t for t in TASKS.values() if t.text.strip() and t.text.strip() in prompt[0]["content"])
                reply = f"Reasoning: loop over the input and build the answer.\\n\\n```python\\n{task.code}\\n```"
                answers.append([Completion(reply, 40, "eos")] * n)
            print("answered", flush=True)  # the test restarts the server now, before this batch is stored
            return answers

    if sys.argv[1] == "first":
        call_command("migrate", verbosity=0)
        run = trace_runs.start_trace_run(None, {"samples": 1, "batch_tasks": 2}, ["mbpp"], 8, enqueue=False)
        run = trace_runs.execute(run.pk, teacher=ReferenceTeacher(1.0))
    else:
        run = trace_runs.resume_trace_run(None, TraceRun.objects.get())
        run = trace_runs.execute(run.pk, teacher=ReferenceTeacher(0.0))
    rows = list(run.traces.values_list("task_id", "sample", "status"))
    print(json.dumps({"status": run.status, "error": run.error, "traces": rows}), flush=True)
""")


def as_postgres(command: list[str]) -> list[str]:
    """initdb and the server refuse root: run them as the postgres user when we are root."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@pytest.fixture
def own_postgres():
    folder = Path(tempfile.mkdtemp(prefix="autodidact-pg-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
    port = free_port()
    data = folder / "data"
    subprocess.run(as_postgres(["initdb", "-D", str(data), "-A", "trust", "-U", "postgres"]), check=True,
                   capture_output=True)
    ctl = as_postgres(["pg_ctl", "-D", str(data), "-l", str(folder / "log"), "-w"])
    subprocess.run([*ctl, "-o", f"-p {port} -k {folder} -c listen_addresses=127.0.0.1", "start"], check=True,
                   capture_output=True)
    yield {"url": f"postgres://postgres@127.0.0.1:{port}/postgres",
           "restart": lambda: subprocess.run([*ctl, "-m", "fast", "restart"], check=True, capture_output=True)}
    subprocess.run([*ctl, "-m", "immediate", "stop"], capture_output=True)
    shutil.rmtree(folder, ignore_errors=True)


def test_a_database_restart_mid_run_fails_it_with_the_reason_and_a_resume_finishes_it(own_postgres, tmp_path):
    env = {**os.environ, "DATABASE_URL": own_postgres["url"], "AUTODIDACT_DATA_DIR": str(tmp_path),
           "DJANGO_SETTINGS_MODULE": "webapp.settings"}
    for name in ("REDIS_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"):
        env.pop(name, None)  # the embedded default: no Redis needed for this
    first = subprocess.Popen([sys.executable, "-c", RUN, "first"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    lines = []
    for line in first.stdout:
        lines.append(line)
        if line.strip() == "answered" and lines.count("answered\n") == 2:  # the first batch is stored
            own_postgres["restart"]()
            break
    out, err = first.communicate(timeout=240)
    lines += out.splitlines()
    assert lines and lines[-1].startswith("{"), f"the run's process died without recording its end:\n{err[-3000:]}"
    failed = json.loads(lines[-1])
    assert failed["status"] == "failed", err[-3000:]
    assert failed["error"].startswith("OperationalError") and "connection" in failed["error"], failed["error"]
    stored = failed["traces"]
    assert len(stored) % 2 == 0 and 2 <= len(stored) < 8 and all(status for _, _, status in stored)  # whole batches

    second = subprocess.run([sys.executable, "-c", RUN, "again"], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=240)
    assert second.returncode == 0, second.stderr[-3000:]
    done = json.loads(second.stdout.splitlines()[-1])
    assert done["status"] == "succeeded" and done["error"] == ""
    keys = [(task, sample) for task, sample, _ in done["traces"]]
    assert len(keys) == 8 and len(set(keys)) == 8  # every task once: nothing lost, nothing repeated
    assert set(map(tuple, stored)) <= set(map(tuple, done["traces"]))
