"""Health of every part the site needs, each check timed and named so a 503 says what is down."""
from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection

from webapp.celery_app import app as celery_app
from webapp.serving import model_worker

# Every queue needs a consumer, or tasks routed there wait forever. `chat` is not required: without
# a chat worker, replies go to `gpu` (model_worker.chat_queue), and the chat worker's check says so.
REQUIRED_QUEUES = ("default", "verify", model_worker.GPU_QUEUE)
WORKER_REPLY_TIMEOUT_S = 1.0


@dataclass
class Check:
    name: str
    label: str
    ok: bool
    detail: str
    ms: float
    info: dict | None = None


def check_database() -> tuple[bool, str, dict | None]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return True, f"{connection.vendor} answers", None


def check_channel_layer() -> tuple[bool, str, dict | None]:
    layer = get_channel_layer()
    nonce = secrets.token_hex(8)

    async def round_trip() -> dict:
        channel = await layer.new_channel("health.")
        await layer.send(channel, {"type": "health.ping", "nonce": nonce})
        return await asyncio.wait_for(layer.receive(channel), timeout=2.0)

    message = async_to_sync(round_trip)()
    if message.get("nonce") != nonce:
        return False, "round trip returned a different message", None
    return True, f"round trip through {type(layer).__name__}", None


def check_broker() -> tuple[bool, str, dict | None]:
    with celery_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, timeout=2)
        return True, f"{conn.transport_cls} broker answers", None


def check_workers() -> tuple[bool, str, dict | None]:
    """Every required queue has a consumer. A solo model worker (`gpu`, `chat`) cannot answer a ping
    while it generates, so a fresh heartbeat saying "busy" counts as its answer: busy is up."""
    replies = celery_app.control.inspect(timeout=WORKER_REPLY_TIMEOUT_S).active_queues() or {}
    workers = {name: sorted(q["name"] for q in queues) for name, queues in replies.items()}
    busy = {}
    for queue in model_worker.MODEL_QUEUES:
        state = model_worker.read_state(queue=queue)
        if state["alive"] and state.get("state") == "busy":
            busy[state["hostname"]] = state.get("task")
            workers.setdefault(state["hostname"], [queue])
    info = {"workers": workers, "busy": busy}
    if not workers:
        return False, "no Celery worker answered", info
    served = {q for queues in workers.values() for q in queues}
    missing = [q for q in REQUIRED_QUEUES if q not in served]
    if missing:
        return False, f"no worker consumes queue(s): {', '.join(missing)}", info
    note = "".join(f" (model worker busy running {task})" for task in busy.values())
    return True, f"{len(workers)} worker(s) serve {', '.join(REQUIRED_QUEUES)}{note}", info


def check_sandbox() -> tuple[bool, str, dict | None]:
    from webapp.core.verification import isolation_report

    report = isolation_report()
    if report["warnings"]:
        return True, f"FALLBACK isolation: {report['level']} ({'; '.join(report['missing'])})", report
    return True, f"isolation {report['level']}", report


def _live_worker(state: dict, model: str) -> tuple[bool, str, dict]:
    """A model worker with a recent heartbeat: down where its model failed to load, else what it
    runs and where its model is."""
    runtime = state.get("runtime") or {}
    if runtime.get("status") == "failed" or state.get("model_error"):
        return False, f"model not available: {runtime.get('error') or state.get('model_error')}", state
    task = f" running {state['task']}" if state.get("task") else ""
    ready = f"ready on {runtime.get('device')} via {runtime.get('backend', '?')}"
    loaded = {"ready": ready, "loading": "loading"}.get(runtime.get("status"), "loads on first use")
    return True, f"{state['state']}{task}, model {model} ({loaded})", state


def check_model_worker() -> tuple[bool, str, dict | None]:
    state = model_worker.read_state()
    if not state["alive"]:
        if state["state"] == "absent":
            return False, state["detail"], state
        return False, f"last heartbeat {state.get('age_s')} s ago (state {state['state']})", state
    return _live_worker(state, state.get("model", "?"))


NO_CHAT_WORKER = ("no chat worker: chat replies go to the gpu worker and wait behind its generation runs "
                  "and rounds (start worker-chat, or set AUTODIDACT_CHAT_QUEUE=gpu to mean it)")


def check_chat_worker() -> tuple[bool, str, dict | None]:
    """The worker that answers the chat. Where none runs, replies go to the gpu worker: still up,
    with a warning; a chat worker that runs but cannot load its model is down."""
    if settings.AUTODIDACT_CHAT_QUEUE != model_worker.CHAT_QUEUE:
        return True, "replies share the model worker (AUTODIDACT_CHAT_QUEUE=gpu)", {"queue": model_worker.GPU_QUEUE}
    state = model_worker.read_state(queue=model_worker.CHAT_QUEUE)
    if not state["alive"]:
        ago = f"; last heartbeat {state.get('age_s')} s ago" if state["state"] != "absent" else ""
        return True, f"{NO_CHAT_WORKER}{ago}", {**state, "warning": NO_CHAT_WORKER}
    return _live_worker(state, (state.get("runtime") or {}).get("model", "?"))  # the chat's own choice


CHECKS: dict[str, tuple[str, Callable[[], tuple[bool, str, dict | None]]]] = {
    "database": ("Database", check_database),
    "channel_layer": ("Channel layer", check_channel_layer),
    "broker": ("Task broker", check_broker),
    "workers": ("Celery workers", check_workers),
    "model_worker": ("Model worker", check_model_worker),
    "chat_worker": ("Chat worker", check_chat_worker),
    "sandbox": ("Sandbox", check_sandbox),
}


def run_checks() -> dict:
    """Run every check; one failing never stops the others."""
    results = []
    for name, (label, check) in CHECKS.items():
        started = time.perf_counter()
        try:
            ok, detail, info = check()
        except Exception as exc:  # a down service shows up as an exception of its client
            ok, detail, info = False, f"{type(exc).__name__}: {exc}"[:300], None
        results.append(Check(name, label, ok, detail, round((time.perf_counter() - started) * 1000, 1), info))
    failing = [c.name for c in results if not c.ok]
    sandbox_info = next((c.info for c in results if c.name == "sandbox"), None) or {}
    chat_info = next((c.info for c in results if c.name == "chat_worker"), None) or {}
    return {
        "status": "ok" if not failing else "down",
        "failing": failing,
        "warnings": list(sandbox_info.get("warnings", [])) + ([chat_info["warning"]] if chat_info.get("warning") else []),
        "mode": "embedded" if settings.EMBEDDED else "server",
        "checks": {c.name: asdict(c) for c in results},
    }
