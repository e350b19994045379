"""Shared fixtures. The suite runs against real services: REDIS_URL and DATABASE_URL must point
at a live Redis and PostgreSQL (`make test` defaults them to the local ones)."""
from __future__ import annotations

import os

import pytest

# Model workers started by tests (embedded `up`, Celery subprocesses) load the model only when a
# test asks for it: the default model costs ~20 s of CPU to load.
os.environ.setdefault("AUTODIDACT_PRELOAD_MODEL", "0")

from tests.support import OUTPUT_DIR


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = os.environ.get("REDIS_URL", "")
    if not url:
        pytest.fail("REDIS_URL is not set: these tests need a real Redis (run them with `make test`)")
    return url


@pytest.fixture(scope="session")
def output_dir():
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    return OUTPUT_DIR
