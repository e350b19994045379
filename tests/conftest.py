"""Shared fixtures. The suite runs against real services: REDIS_URL and DATABASE_URL must point
at a live Redis and PostgreSQL (`make test` defaults them to the local ones)."""
from __future__ import annotations

import os

import pytest

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
