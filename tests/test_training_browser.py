"""A training round in headless Chromium on the embedded default (SQLite with the seed puzzles'
verified pairs, the embedded workers): an admin fills in the form for a tiny round on a tiny random
model, and the round runs on the site's own `gpu` worker while the page follows it to the end,
with the loss chart and the before/after table; the new version shows on the models page."""
import re
import time

import pytest
from playwright.sync_api import expect

from tests.support import SiteProcess, embedded_env, sign_in_admin

PASSWORD = "training-browser-password"
ROUND_S = 180  # the whole round on 2 CPU cores, generously
TINY_FORM = {"Max steps": "4", "Block size": "64", "Batch size": "2", "Samples per puzzle (n)": "2",
             "Temperature": "0.8", "Puzzles (subset)": "3", "MBPP validation tasks": "2", "k for the gate": "1",
             "Margin (points)": "0", "Report after promotion": ""}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    from engine.lm.tiny import build_tiny_model

    tiny = str(build_tiny_model(tmp_path_factory.mktemp("training-tiny")))
    env = embedded_env(tmp_path_factory.mktemp("training-site"), AUTODIDACT_ADMIN_PASSWORD=PASSWORD,
                       AUTODIDACT_MODEL=tiny, AUTODIDACT_PRELOAD_MODEL="0", CONSOLE_LOG_LEVEL="INFO")
    process = SiteProcess(env)
    process.wait_until_up()
    yield process
    process.interrupt()


def model_worker_detail(page, site) -> str:
    """What /healthz says the site's model worker (the embedded `gpu` consumer) is doing."""
    report = page.request.get(f"{site.url}/healthz").json()
    return report["checks"]["model_worker"]["detail"]


@pytest.mark.timeout(ROUND_S + 240)
def test_a_training_round_from_the_form_to_its_result(site, page, output_dir):
    sign_in_admin(page, site, PASSWORD, "/training/")
    expect(page.get_by_role("heading", name="Training", exact=True)).to_be_visible()
    expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="Training")).to_have_attribute(
        "aria-current", "page")
    expect(page.get_by_test_id("no-runs")).to_be_visible()
    expect(page.get_by_label("MBPP validation tasks")).to_have_value("90")  # the defaults
    expect(page.get_by_label("k for the gate")).to_have_value("10")
    expect(page.get_by_label("Fallback α")).to_have_attribute("type", "text")  # a list, left empty: none

    for label, value in TINY_FORM.items():
        page.get_by_label(label, exact=True).fill(value)
    page.get_by_test_id("start-round").click()
    expect(page).to_have_url(re.compile(r"/training/runs/\d+/$"))
    run_id = int(re.search(r"/runs/(\d+)/", page.url).group(1))
    expect(page.get_by_role("heading", name=f"Training round {run_id}")).to_be_visible()
    panel = page.get_by_test_id("run-panel")

    # The site's gpu worker takes it: the panel (polled by htmx) leaves "queued", and the model
    # worker reports the round as its task while it runs.
    expect(panel).to_have_attribute("data-status", re.compile("running|evaluating|succeeded"), timeout=60_000)
    seen_busy, deadline = False, time.monotonic() + ROUND_S
    while time.monotonic() < deadline:
        status = panel.get_attribute("data-status")
        if status in ("succeeded", "failed", "cancelled"):
            break
        seen_busy = seen_busy or "gpu.training_round" in model_worker_detail(page, site)
        time.sleep(1)
    expect(panel).to_have_attribute("data-status", "succeeded", timeout=10_000)
    assert seen_busy, "the site's model worker never reported the round as its task"
    site.output.wait_for(rf"round {run_id}: trained 4 steps", 5)  # logged by the site process, not this one

    # The finished round: no more polling, the loss chart, the table, the decision, the new version.
    expect(panel).not_to_have_attribute("hx-trigger", re.compile("."))
    expect(page.get_by_test_id("run-percent")).to_have_text("100%")
    expect(page.get_by_test_id("loss-chart").locator("svg polyline")).to_have_count(1)
    expect(page.get_by_test_id("loss-chart")).not_to_contain_text("no data yet")
    table = page.get_by_test_id("compare-table")
    expect(table).to_be_visible()
    expect(page.get_by_test_id("compare-pass-1")).to_contain_text(re.compile(r"\d+\.\d%.*\d+\.\d%", re.S))
    expect(page.get_by_test_id("compare-solved")).to_contain_text(re.compile(r"\d+/3.*\d+/3", re.S))
    expect(page.get_by_test_id("compare-humaneval-passed")).to_contain_text(re.compile(r"\d+/2.*\d+/2", re.S))
    expect(page.get_by_test_id("compare-code-chat-passed")).to_contain_text(re.compile(r"\d+/2.*\d+/2", re.S))
    expect(page.get_by_test_id("run-decision")).to_contain_text(re.compile(r"(promoted|rejected): pass@1 "))
    expect(page.get_by_test_id("dataset")).to_contain_text("Verified puzzle pairs")
    expect(page.get_by_test_id("run-log")).to_contain_text("trained 4 steps")
    expect(page.get_by_test_id("run-version")).to_contain_text(f"round {run_id}")
    page.set_viewport_size({"width": 1280, "height": 1800})
    page.screenshot(path=str(output_dir / "training-round.png"), full_page=True)

    # The list and the models page show it.
    page.get_by_role("link", name="Training", exact=True).first.click()
    row = page.get_by_test_id("run-row")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("succeeded")
    expect(row.get_by_test_id("run-gate")).to_contain_text(re.compile(r"pass@1\s+\d+\.\d% → \d+\.\d%"))
    page.screenshot(path=str(output_dir / "training-list.png"), full_page=True)
    page.get_by_test_id("models-link").click()
    expect(page.get_by_test_id("version-row")).to_have_count(2)
    # P3 pass@1 and the code check in both forms per version; pass@10 needs 10 samples per puzzle,
    # this round took 2
    chart = page.get_by_test_id("versions-chart")
    expect(chart.locator("svg polyline")).to_have_count(3)
    expect(chart).to_contain_text("P3 pass@10 (no data)")
    expect(chart).to_contain_text("chat-form code pass@1")
    new = page.locator(".versions-table tr", has_text=f"round {run_id}")
    expect(new.get_by_role("link", name=f"Round {run_id}")).to_be_visible()
    expect(new.get_by_test_id("version-pass-1")).to_have_text(re.compile(r"\d+\.\d%"))
    expect(new.get_by_test_id("version-code-chat")).to_have_text(re.compile(r"\d+\.\d%"))
    page.screenshot(path=str(output_dir / "training-models.png"), full_page=True)
