"""Small tasks that prove the task system works end to end."""
from __future__ import annotations

import os
import socket

from celery import shared_task


@shared_task(name="core.echo")
def echo(payload: dict) -> dict:
    """Return the payload with who ran it: a JSON round trip through broker, worker and results."""
    return {"payload": payload, "worker_pid": os.getpid(), "host": socket.gethostname()}


@shared_task(name="verify.echo")
def verify_echo(payload: dict) -> dict:
    """Same as `core.echo`, routed to the `verify` queue."""
    return echo(payload)


@shared_task(name="gpu.echo")
def gpu_echo(payload: dict) -> dict:
    """Same as `core.echo`, routed to the model worker's `gpu` queue."""
    return echo(payload)
