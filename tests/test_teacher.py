"""A teacher writes puzzles over HTTP (the paper's Codex role): a llama.cpp server started by the
product for the packaged Qwen2.5-Coder-0.5B writes puzzles and solutions that go through the
filters and the sandbox like the model's own and become verified pairs, each recorded with its
writer; a server that times out, answers 500 or 429, or sends a body that is not JSON costs
retries, counted by kind, never the run; and a started server never outlives its starter."""
import base64
import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from engine.lm.generation import SamplingParams
from engine.lm.local_server import LocalServer
from engine.lm.model_source import resolve_model_source
from engine.lm.openai_endpoint import Endpoint, EndpointModel
from engine.lm.packaged_models import installed
from engine.sandbox import verify_many
from engine.selfplay.p3 import load_p3, one_per_problem
from engine.selfplay.pipeline import BatchStore, SelfPlayConfig, SelfPlayPipeline
from engine.selfplay.training_text import normalised
from tests.support import BENCHMARK_DATA

pytest.importorskip("llama_cpp.server.app", reason="llama.cpp's server is not installed")

GOOD = {"choices": [{"text": "x: int):\n    return x % 97 == 5 and x > 1000\n", "finish_reason": "stop"}],
        "usage": {"completion_tokens": 17}}


class Flaky(BaseHTTPRequestHandler):
    """Answers each request with the next behaviour of `script` (then always the last one)."""

    script: list[str] = []
    seen: list[dict] = []

    def do_POST(self):  # noqa: N802 - the stdlib's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        step = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if step == "slow":
            time.sleep(1.5)  # past the client's timeout
            return self._send(200, json.dumps(GOOD))
        if step == "500":
            return self._send(500, "oops")
        if step == "429":
            return self._send(429, "slow down", {"Retry-After": "0.1"})
        if step == "junk":
            return self._send(200, "<html>not json</html>")
        if step == "echo":  # a proxy that echoes the request's headers in an error page
            return self._send(200, f"auth={self.headers.get('Authorization')}")
        if step == "empty":
            return self._send(200, json.dumps({"choices": []}))
        return self._send(200, json.dumps(GOOD))

    def _send(self, status: int, text: str, headers: dict | None = None):
        try:
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            self.wfile.write(text.encode())
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (its timeout): as a real server sees it

    def log_message(self, *args):
        pass


@pytest.fixture
def flaky():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    Flaky.seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def endpoint(url: str, **kw) -> EndpointModel:
    return EndpointModel(Endpoint(url, "teacher-x", api_key="sk-secret-123", timeout_s=0.5, backoff_s=0.01,
                                  parallel=1, **kw))


def test_timeouts_errors_and_bad_json_are_retried_counted_and_never_fail_the_run(flaky, tmp_path):
    Flaky.script = ["slow", "500", "429", "junk", "empty", "ok"]
    model = endpoint(flaky, retries=5)
    completion = model.complete("def f1(", SamplingParams(max_new_tokens=20, seed=3))
    assert completion.text == GOOD["choices"][0]["text"] and completion.tokens == 17
    assert dict(model.errors) == {"timeout": 1, "http-5xx": 1, "http-429": 1, "bad-json": 2} and model.retried == 5
    assert all(r["auth"] == "Bearer sk-secret-123" for r in Flaky.seen)
    assert Flaky.seen[-1]["body"]["model"] == "teacher-x" and Flaky.seen[-1]["body"]["seed"] == 3
    assert "sk-secret" not in repr(model) + model.name + repr(model.endpoint)

    # A teacher that never recovers: its requests come back as errors, counted; the run finishes.
    Flaky.script = ["500"]
    down = endpoint(flaky, retries=2)
    train = [p for p in one_per_problem(load_p3(BENCHMARK_DATA / "p3")) if p.split == "train"]
    config = SelfPlayConfig(batches=1, puzzles_per_prompt=3, attempts=1, generation_tokens=24, context_tokens=600)
    summary = SelfPlayPipeline(down, train, verify_many, config, BatchStore(tmp_path / "run"), writer=down).run()
    assert summary.counts["writer_errors"] == 3 and summary.counts["generated"] == 0
    assert down.errors["http-5xx"] == 9 and summary.timings["generate"]["retries"] == 6


def test_the_key_stays_out_of_names_and_error_messages(flaky):
    """An endpoint that echoes the request, or a URL that carries credentials, leaks nothing."""
    from engine.lm.openai_endpoint import EndpointError

    Flaky.script = ["echo"]
    model = endpoint(flaky, retries=0)
    with pytest.raises(EndpointError) as raised:
        model._post("/completions", {"prompt": "x"})
    assert raised.value.kind == "bad-json" and "auth=Bearer ***" in str(raised.value)
    assert "sk-secret" not in str(raised.value)
    with_user = EndpointModel(Endpoint(flaky.replace("http://", "http://alice:hunter2@"), "m", retries=0))
    assert "hunter2" not in with_user.name + repr(with_user) and with_user.name.endswith(flaky.split("//")[1])
    Flaky.script = ["ok"]  # the URL's user and password go as basic auth, not in the request's URL
    assert with_user.complete("def f(", SamplingParams(max_new_tokens=5)).text == GOOD["choices"][0]["text"]
    assert Flaky.seen[-1]["auth"] == "Basic " + base64.b64encode(b"alice:hunter2").decode()


# Three small puzzles with their solutions: a prompt a 0.5B teacher can follow in a test's time.
EXAMPLES = [SimpleNamespace(sat="def sat(x: int, a=1234):\n    return x - a == 17", sol="def sol(a=1234):\n    return a + 17",
                            split="train"),
            SimpleNamespace(sat="def sat(s: str, n=7):\n    return s == 'ab' * n", sol="def sol(n=7):\n    return 'ab' * n",
                            split="train"),
            SimpleNamespace(sat="def sat(x: int, b=980):\n    return x * 3 == b * 3 + 300",
                            sol="def sol(b=980):\n    return b + 100", split="train")]


def test_the_default_teacher_served_locally_writes_puzzles_that_become_verified_pairs(tmp_path):
    """The packaged Qwen2.5-Coder-0.5B behind a llama.cpp server the product starts, over HTTP: its
    puzzles and the solutions it writes with them (the pair form) go through the filters and the
    sandbox, and verified pairs come out, each recorded with its writer. Seeded: the same pairs
    on every run of this build."""
    gguf = installed("qwen2.5-coder-0.5b-instruct")
    assert gguf is not None, "make install fetches the default teacher"
    config = SelfPlayConfig(batches=1, puzzles_per_prompt=8, attempts=1, generation_tokens=64, solving_tokens=32,
                            form="pair", seed=0)  # the pair form writes 64 + 32 tokens
    with LocalServer(gguf, context=1024, threads=2) as server:
        teacher = EndpointModel(Endpoint(server.url, server.gguf.stem, parallel=2))
        store = BatchStore(tmp_path / "run")
        summary = SelfPlayPipeline(teacher, EXAMPLES, verify_many, config, store, writer=teacher).run()
    assert server.process is None  # stopped on leaving the block
    counts = summary.counts
    assert counts["writer_errors"] == 0 and counts["generated"] == 8 and not teacher.errors
    assert counts["generated"] == counts["accepted"] + sum(v for k, v in counts.items() if k.startswith("rejected_"))
    [batch] = store.completed().values()
    written = [a for p in batch["puzzles"] for a in p["attempts"] if a.get("by") == "writer"]
    assert any(a["status"] == "passed" for a in written), [(a["solution"], a["detail"]) for a in written]
    for puzzle in batch["puzzles"]:
        assert puzzle["writer"] == teacher.name == f"{gguf.stem} @ 127.0.0.1:{server.port}"
        passed = {normalised(a["solution"]) for a in puzzle["attempts"] if a["status"] == "passed"}
        assert set(puzzle["kept"]) == passed  # every distinct verified solution (fewer than 8 here)
    assert counts["pairs_kept"] >= 1 and len(summary.pairs) == counts["pairs_kept"]
    assert summary.pairs == [(p["sat"], s) for p in batch["puzzles"] for s in p["kept"]]


def test_a_started_server_dies_with_the_process_that_started_it(tmp_path):
    """However that process ends (here SIGKILL, no cleanup runs), no server is left holding a port."""
    script = ("import sys, time\nfrom engine.lm.local_server import LocalServer\n"
              f"server = LocalServer({str(resolve_model_source('').llama_file)!r}, context=512, threads=1).start()\n"
              "print(server.process.pid, flush=True)\ntime.sleep(120)\n")
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    assert running(child)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while running(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    if running(child):
        os.kill(child, signal.SIGKILL)
        raise AssertionError("the llama.cpp server outlived the process that started it")


def running(pid: int) -> bool:
    """Alive and not a zombie waiting for a parent to reap it."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.django_db
def test_the_local_teacher_is_a_packaged_model_a_trained_version_or_a_file(settings, tmp_path):
    """AUTODIDACT_TEACHER_LOCAL names what the local server serves; a choice not available here is
    refused with what to do, before any server starts."""
    from engine.lm.gguf_export import report_name
    from engine.lm.model_source import ModelNotFound
    from webapp.serving.models import ModelVersion
    from webapp.serving.teacher import default_teacher_file, teacher_file

    def chosen(value):
        settings.AUTODIDACT_TEACHER_LOCAL = value
        return teacher_file()

    assert chosen("") == default_teacher_file()
    assert chosen("packaged:qwen2.5-coder-0.5b-instruct") == installed("qwen2.5-coder-0.5b-instruct")
    smollm = resolve_model_source("").llama_file
    assert str(chosen(smollm)) == smollm
    # a trained version: its checked GGUF copy (chosen by its check's report; no server starts here)
    trained = tmp_path / "round-1" / "model"
    trained.mkdir(parents=True)
    (trained / "config.json").write_text("{}")
    (trained / "model-f16.gguf").write_bytes(b"GGUF")
    (trained / report_name("f16")).write_text(json.dumps({"file": "model-f16.gguf", "passed": True}))
    version = ModelVersion.objects.create(name="v1 · round 1", checkpoint=str(trained))
    assert chosen(f"version:{version.pk}") == trained / "model-f16.gguf"
    (trained / report_name("f16")).write_text(json.dumps({"file": "model-f16.gguf", "passed": False}))
    for value, reason in ((f"version:{version.pk}", "has no checked GGUF copy to serve"),
                          ("version:999999", "no such model version"), ("packaged:gpt-9", "not a fetched packaged model"),
                          (str(tmp_path / "missing.gguf"), "give packaged:NAME, version:ID or an existing .gguf")):
        with pytest.raises(ModelNotFound, match=reason):
            chosen(value)
