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
