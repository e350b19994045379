"""What a person waits for in the chat, measured in a real browser against the embedded site.

For each backend, starts `manage.py up` (embedded: SQLite, in-memory layer, in-process workers)
with the default model preloaded, signs in with headless Chromium, and sends the same messages
one after another. For each it records, from the click on Send:
- time to first token: until the first streamed text shows on the page (websocket included);
- time to the finished, rendered answer, and the tokens/s the page saw.

    python benchmarks/chat_latency_bench.py [--messages 5] [--tokens 128] [--backends transformers,auto]
        [--chat-models auto,packaged:default]   (the conversation's model: the default, or SmolLM2)
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support import SiteProcess, embedded_env  # noqa: E402

PASSWORD = "bench-password"
MESSAGES = ["Write a Python function that reverses a string.", "How do I read a CSV file in Python?",
            "Write a function that checks whether a number is prime.", "Explain list comprehensions briefly.",
            "Write a function that merges two sorted lists."]


def measure(backend: str, messages: int, tokens: int, chat_model: str = "auto") -> dict:
    from playwright.sync_api import expect, sync_playwright

    data = Path(tempfile.mkdtemp(prefix="chat-bench-"))
    site = SiteProcess(embedded_env(data, AUTODIDACT_ADMIN_PASSWORD=PASSWORD, AUTODIDACT_BACKEND=backend,
                                    AUTODIDACT_PRELOAD_MODEL="1", AUTODIDACT_CHAT_MAX_TOKENS=str(tokens),
                                    AUTODIDACT_CHAT_RATE_LIMIT="", AUTODIDACT_CHAT_MODEL=chat_model))
    rows = []
    try:
        site.wait_until_up()
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"),
                                        args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page()
            page.goto(site.url + "/accounts/login/?next=/chat/")
            page.get_by_label("Username").fill("admin")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            page.get_by_label("Message").fill("Hello")
            page.get_by_role("button", name="Start").click()
            expect(page.locator("#connection")).to_have_text("live")
            # Wait for the model to be loaded and the first answer done (warm-up).
            expect(page.locator("li.msg-assistant").last).not_to_have_attribute("data-status", "streaming",
                                                                                  timeout=180_000)
            for index in range(messages):
                count = page.locator("li.msg-assistant").count()
                page.get_by_placeholder("Message the model").fill(MESSAGES[index % len(MESSAGES)])
                started = time.perf_counter()
                page.get_by_test_id("send").click()
                reply = page.locator("li.msg-assistant").nth(count)
                page.wait_for_function(
                    """n => { const r = document.querySelectorAll('li.msg-assistant')[n];
                              if (!r) return false;
                              const s = r.querySelector('.msg-stream');
                              return (s && s.textContent.length > 0) || r.dataset.status !== 'streaming'; }""",
                    arg=count, polling="raf", timeout=120_000)
                first = time.perf_counter() - started
                expect(reply).not_to_have_attribute("data-status", "streaming", timeout=300_000)
                expect(reply.locator(".md")).to_be_visible()
                total = time.perf_counter() - started
                chunks = int(reply.get_attribute("data-seq") or 0)
                rows.append({"ttft_ms": first * 1000, "total_s": total, "chunks": chunks})
            browser.close()
        health = site.output.text()
    finally:
        site.interrupt()
        shutil.rmtree(data, ignore_errors=True)
    return {"backend": backend, "chat_model": chat_model, "rows": rows, "log_tail": health[-400:]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--backends", default="transformers,auto")
    parser.add_argument("--chat-models", default="auto",
                        help="conversation models, comma-separated (auto: the product's default; packaged:default: SmolLM2)")
    args = parser.parse_args()
    results = [measure(b, args.messages, args.tokens, m) for m in args.chat_models.split(",")
               for b in args.backends.split(",")]
    print(f"chat in Chromium, embedded site, {args.messages} messages, <= {args.tokens} new tokens")
    print("| conversation model | backend | TTFT median ms | TTFT max ms | answer median s |")
    print("|---|---|---|---|---|")
    for result in results:
        ttft = [r["ttft_ms"] for r in result["rows"]]
        total = [r["total_s"] for r in result["rows"]]
        print(f"| {result['chat_model']} | {result['backend']} | {statistics.median(ttft):.0f} | {max(ttft):.0f} "
              f"| {statistics.median(total):.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
