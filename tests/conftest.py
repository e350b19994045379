"""Shared fixtures. The suite runs against real services: REDIS_URL and DATABASE_URL must point
at a live Redis and PostgreSQL (`make test` defaults them to the local ones)."""
from __future__ import annotations

import os
import shutil

import pytest

# Model workers started by tests (embedded `up`, Celery subprocesses) load the model only when a
# test asks for it: the default model costs ~20 s of CPU to load.
os.environ.setdefault("AUTODIDACT_PRELOAD_MODEL", "0")
# Conversations talk to the served model (the packaged SmolLM2 or a test's tiny one) unless a test
# picks another: the product's default, Qwen2.5-Coder-0.5B, is tested where it is picked.
os.environ.setdefault("AUTODIDACT_CHAT_MODEL", "")


from tests.support import OUTPUT_DIR  # noqa: E402  (after the environment above)


def pytest_configure(config):
    from django.conf import settings

    settings.AUTODIDACT_CHAT_MODEL = os.environ["AUTODIDACT_CHAT_MODEL"]  # loaded before this file was


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


@pytest.fixture(autouse=True)
def fresh_channel_layer():
    """Each test gets its own channel-layer instance. In channels_redis a receiver cancelled while
    it waits for the layer's per-channel clean lock never gives its wait back, so that lock outlives
    the test's `async_to_sync` event loop, bound to it; the next test whose receiver has to wait
    for it fails with "bound to a different event loop". A server runs one loop; tests run many."""
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


# --- headless Chromium (Debian's package; Playwright drives it) ---------------------------------
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
                 "--no-first-run", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    if not shutil.which(CHROMIUM):
        pytest.fail(f"Chromium not found at {CHROMIUM}: install Debian's `chromium` package (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"


