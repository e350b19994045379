"""Tasks through the real broker (Redis under `make test`) and real worker processes."""
import os
import signal
import time
import uuid

import pytest
import redis
from celery.exceptions import TimeoutError as CeleryTimeout
from kombu.exceptions import EncodeError

from tests.support import batch_after_a_kill, slow_jobs, start_worker, stop_worker
from webapp.core.tasks import echo, gpu_echo, verify_batch, verify_echo


@pytest.fixture(scope="module")
def workers(redis_url):
    redis.Redis.from_url(redis_url).flushdb()
    started = [start_worker("verify", "verify,default", "prefork"), start_worker("gpu", "gpu", "solo")]
    yield
    for proc, _ in started:
        stop_worker(proc)


def test_json_task_round_trip_on_each_queue_reaches_the_right_worker(workers):
    payload = {"text": "héllo", "numbers": [1, 2.5, None], "nested": {"ok": True}}
    for task, queue, worker_prefix in ((echo, "default", "verify@"), (verify_echo, "verify", "verify@"),
                                       (gpu_echo, "gpu", "gpu@")):
        result = task.delay(payload).get(timeout=30)
        assert result["payload"] == payload and result["queue"] == queue
        assert result["worker"].startswith(worker_prefix), (task.name, result["worker"])
        assert result["pid"] != os.getpid()


def test_non_json_arguments_are_refused_before_sending(workers):
    with pytest.raises(EncodeError):
        echo.delay({"a set": {1, 2}})


@pytest.mark.django_db
def test_health_is_ok_when_workers_and_model_worker_run(workers, client):
    body = None
    for _ in range(20):  # the model worker's first heartbeat may take a moment
        response = client.get("/healthz")
        body = response.json()
        if response.status_code == 200:
            break
        time.sleep(0.5)
    assert body["status"] == "ok", body
    assert body["checks"]["model_worker"]["info"]["state"] in ("idle", "busy")
    served = {q for qs in body["checks"]["workers"]["info"]["workers"].values() for q in qs}
    assert {"default", "verify", "gpu"} <= served


@pytest.mark.django_db
def test_health_stays_ok_while_the_model_worker_is_busy(workers, client):
    """The solo gpu worker cannot answer a ping mid-task; a load balancer must still see the site up."""
    pending = gpu_echo.delay({"busy": True}, hold_s=12)
    seen_busy = []
    deadline = time.monotonic() + 11
    while time.monotonic() < deadline and len(seen_busy) < 3:
        response = client.get("/healthz")
        body = response.json()
        if body["checks"]["model_worker"]["info"].get("state") == "busy":
            seen_busy.append((response.status_code, body["failing"], body["checks"]["workers"]["detail"]))
        time.sleep(0.5)
    pending.get(timeout=30)
    assert len(seen_busy) == 3, "the model worker never reported busy"
    for status, failing, detail in seen_busy:
        assert (status, failing) == (200, []), detail
        assert "busy running gpu.echo" in detail


def test_a_killed_workers_task_is_redelivered_not_lost(redis_url):
    queue = f"redelivery-{uuid.uuid4().hex[:8]}"
    env = {"CELERY_VISIBILITY_TIMEOUT": "3"}
    first, _ = start_worker("doomed", queue, "prefork", env)
    result = echo.apply_async(({"n": 1},), {"hold_s": 8}, queue=queue)
    try:
        deadline = time.monotonic() + 20
        while result.state != "STARTED":
            assert time.monotonic() < deadline, "the task never started"
            time.sleep(0.1)
    finally:
        stop_worker(first, signal.SIGKILL)  # the whole worker dies mid-task, no goodbye
    with pytest.raises(CeleryTimeout):
        result.get(timeout=1)  # nobody is running it now
    second, _ = start_worker("rescuer", queue, "prefork", env)
    try:
        done = result.get(timeout=60)
    finally:
        stop_worker(second)
    assert done["payload"] == {"n": 1} and done["worker"].startswith("rescuer@")


def test_a_verify_worker_killed_mid_batch_loses_no_verdict(redis_url):
    """kill -9 of a verify worker while its sandbox runs a batch (1 s in: its sandbox runs are under
    way): the batch goes to the next worker, which returns every verdict, right, once."""
    verdicts = batch_after_a_kill(slow_jobs(6), 1.0)
    assert sorted((v["id"], v["status"]) for v in verdicts) == [(f"job{i}", "passed" if i % 2 else "failed")
                                                                for i in range(6)]


def test_verify_batch_runs_the_sandbox_in_a_worker(workers):
    jobs = [
        {"id": "good", "kind": "tests", "code": "def add(a, b):\n    return a + b", "tests": ["assert add(2, 2) == 4"]},
        {"id": "bad", "kind": "puzzle", "sat": "def sat(x: int):\n    return x == 3",
         "sol": "def sol():\n    import os\n    os.kill(os.getppid(), 9)\n    return 2"},
        {"id": "broken", "kind": "mystery"},
    ]
    verdicts = {v["id"]: v for v in verify_batch.delay(jobs).get(timeout=60)}
    assert verdicts["good"]["status"] == "passed" and verdicts["good"]["isolation"] == "namespaces+uid"
    assert verdicts["bad"]["status"] == "error" and "PermissionError" in verdicts["bad"]["detail"]
    assert verdicts["broken"]["status"] == "error"
