"""Embedded mode's in-process Celery workers run real JSON tasks, routed by queue, not eagerly."""
import json
import subprocess
import sys

from tests.support import ROOT, embedded_env

SCRIPT = """
import json, django
django.setup()
from webapp.celery_app import app
from webapp.core.embedded import EmbeddedWorkers
from webapp.core.tasks import echo, gpu_echo, verify_echo
assert not app.conf.task_always_eager
workers = EmbeddedWorkers(with_beat=False)
workers.start()
try:
    out = {t.name: t.delay({"q": t.name}).get(timeout=30) for t in (echo, verify_echo, gpu_echo)}
    try:
        echo.delay({"bad": {1, 2}})
        out["encode_error"] = None
    except Exception as exc:
        out["encode_error"] = type(exc).__name__
finally:
    workers.stop()
print(json.dumps(out))
"""


def test_in_process_workers_route_and_serialise(tmp_path):
    run = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={**embedded_env(tmp_path), "DJANGO_SETTINGS_MODULE": "webapp.settings"})
    assert run.returncode == 0, run.stderr[-2000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert [out[name]["queue"] for name in ("core.echo", "verify.echo", "gpu.echo")] == ["default", "verify", "gpu"]
    assert out["gpu.echo"]["thread"] == "celery-gpu"  # the solo model worker's own thread
    assert out["verify.echo"]["thread"] != "celery-gpu"
    assert out["gpu.echo"]["payload"] == {"q": "gpu.echo"}
    assert out["encode_error"] == "EncodeError"


MODEL_SCRIPT = """
import json, time, django
django.setup()
from webapp.core.embedded import EmbeddedWorkers
from webapp.core.health import check_model_worker
from webapp.serving.model_worker import read_state
from webapp.core.tasks import gpu_sample
workers = EmbeddedWorkers(with_beat=False)
workers.start()
try:
    for _ in range(300):
        state = read_state()
        if state.get("model_error") or state.get("runtime", {}).get("status") in ("ready", "failed"):
            break
        time.sleep(0.1)
    out = {"state": state, "health": check_model_worker()[:2]}
    if state.get("runtime", {}).get("status") == "ready":
        out["samples"] = gpu_sample.delay(["def add(a, b):"], 2, {"max_new_tokens": 4, "temperature": 1.0,
                                                                 "seed": 1}).get(timeout=60)
finally:
    workers.stop()
print(json.dumps(out))
"""


def run_model_script(tmp_path, model: str) -> dict:
    env = {**embedded_env(tmp_path / "data"), "DJANGO_SETTINGS_MODULE": "webapp.settings",
           "AUTODIDACT_MODEL": model, "AUTODIDACT_PRELOAD_MODEL": "1"}
    run = subprocess.run([sys.executable, "-c", MODEL_SCRIPT], cwd=ROOT, capture_output=True, text=True,
                         timeout=180, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_model_worker_preloads_serves_samples_and_reports_its_state(tmp_path):
    from engine.lm.tiny import build_tiny_model

    out = run_model_script(tmp_path, str(build_tiny_model(tmp_path / "tiny")))
    runtime = out["state"]["runtime"]
    assert runtime["status"] == "ready" and runtime["device"] == "cpu" and runtime["quantization"] == "none"
    assert out["health"][0] is True and "ready on cpu" in out["health"][1]
    assert len(out["samples"]) == 1 and len(out["samples"][0]) == 2
    assert all(sample["tokens"] == 4 and sample["finish_reason"] == "length" for sample in out["samples"][0])


def test_a_missing_model_is_reported_not_hidden(tmp_path):
    out = run_model_script(tmp_path, str(tmp_path / "no-such-model"))
    assert out["health"][0] is False and "model not available" in out["health"][1]
    assert "no such file or directory" in out["health"][1]
