"""The puzzle pages in headless Chromium on the embedded default (SQLite with the seed puzzles,
the embedded verify worker and sandbox): browse, filter, review from the keyboard, open a puzzle,
solve it yourself wrong then right, and find the review in its history."""
import re

import pytest
from playwright.sync_api import expect

from engine.selfplay.seeds import SEED_PUZZLES
from tests.support import SiteProcess, embedded_env, sign_in_admin

PASSWORD = "puzzles-browser-password"
SEEDS = {seed.name: seed for seed in SEED_PUZZLES}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    env = embedded_env(tmp_path_factory.mktemp("puzzles-site"), AUTODIDACT_ADMIN_PASSWORD=PASSWORD,
                       AUTODIDACT_PRELOAD_MODEL="0")
    process = SiteProcess(env)
    process.wait_until_up()
    yield process
    process.interrupt()


def sign_in(page, site):
    sign_in_admin(page, site, PASSWORD, "/puzzles/")
    expect(page.get_by_role("heading", name="Puzzles", exact=True)).to_be_visible()


def test_browse_filter_review_and_solve_in_the_browser(site, page, output_dir):
    sign_in(page, site)
    rows = page.get_by_test_id("puzzle-row")
    count = page.get_by_test_id("puzzle-count")
    expect(count).to_contain_text(f"{len(SEED_PUZZLES)} puzzles")
    expect(rows).to_have_count(50)
    expect(page.get_by_role("link", name=SEED_PUZZLES[-1].name)).to_be_visible()

    # Filter by text in a seed's code: htmx swaps only the results and the URL follows.
    search = page.get_by_label("Search")
    search.fill("n ** 3 % 1000 == tail")
    search.press("Enter")
    expect(count).to_contain_text("1 puzzle match the filters")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Seed_CubeEndingDigits")
    expect(page).to_have_url(re.compile(r"/puzzles/\?q=n\+%2A%2A\+3\+%25\+1000\+%3D%3D\+tail$"))
    # Typing in a field never triggers a shortcut.
    search.fill("")
    search.press("j")
    expect(page.locator("#puzzle-results tr.selected")).to_have_count(0)
    search.fill("")
    search.press("Enter")
    expect(count).to_contain_text(f"{len(SEED_PUZZLES)} puzzles")
    expect(rows).to_have_count(50)
    page.get_by_label("Status").select_option("unsolved")  # a select filters on change
    expect(count).to_contain_text("0 puzzles match")
    page.get_by_label("Status").select_option("")
    expect(rows).to_have_count(50)

    # The keyboard: j/k move the selection, a approves the selected puzzle, ? shows the help.
    page.locator("h1").click()  # leave the search field
    page.keyboard.press("j")
    page.keyboard.press("j")
    expect(rows.nth(1)).to_have_class(re.compile(r"\bselected\b"))
    expect(rows.nth(1)).to_have_attribute("aria-selected", "true")
    page.keyboard.press("k")
    first = rows.nth(0)
    expect(first).to_have_class(re.compile(r"\bselected\b"))
    expect(first).to_have_attribute("aria-selected", "true")
    expect(rows.nth(1)).to_have_attribute("aria-selected", "false")
    expect(page.locator("#puzzle-results tr.selected")).to_have_count(1)
    name = first.get_attribute("data-name")
    seed = SEEDS[name]
    expect(first.get_by_test_id("review-cell")).to_contain_text("not reviewed")
    with page.expect_response(lambda response: "/review/" in response.url and response.ok):
        page.keyboard.press("a")
    expect(first.get_by_test_id("review-cell")).to_contain_text("approved")
    page.keyboard.press("?")
    help_box = page.locator("#shortcut-help")
    expect(help_box).to_be_visible()
    expect(help_box).to_contain_text("approve the selected puzzle")
    page.screenshot(path=str(output_dir / "puzzles-list.png"))
    page.keyboard.press("?")
    expect(help_box).to_be_hidden()

    # Filter by review state: the approved puzzle is the only one.
    page.get_by_label("Review").select_option("approve")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(name)

    # Open it from the keyboard.
    page.locator("h1").click()
    page.keyboard.press("j")
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("puzzle-name")).to_have_text(name)
    expect(page.locator("[data-testid=sat] .highlight")).to_be_visible()
    expect(page.get_by_test_id("solution")).to_have_count(1)  # the seed's reference solution

    # Solve it yourself: a wrong answer fails, the seed's solution passes.
    code = page.get_by_label(re.compile("^Your sol"))
    expect(code).to_have_value(re.compile(r"^def sol\("))
    code.fill(re.sub(r"(?s)\):.*", "):\n    return None", seed.sol, count=1))
    page.get_by_test_id("solve-submit").click()
    verdict = page.get_by_test_id("solve-verdict")
    expect(verdict).to_have_attribute("data-status", re.compile("failed|error"), timeout=60_000)
    expect(verdict).to_contain_text("Not solved")
    code.fill(seed.sol)
    page.get_by_test_id("solve-submit").click()
    expect(verdict).to_have_attribute("data-status", "passed", timeout=60_000)
    expect(verdict).to_contain_text("Solved")
    expect(page.get_by_test_id("attempt-count")).to_have_text("(3)")

    # The review history shows the approval made from the list.
    history = page.get_by_test_id("review-history")
    expect(history.get_by_test_id("review")).to_have_count(1)
    expect(history).to_contain_text("approve")
    expect(history).to_contain_text("admin")
    # And a review from the page re-renders the panel.
    page.get_by_label(re.compile("^Comment")).fill("Checked by hand <b>twice</b>")
    page.get_by_role("button", name="Flag", exact=True).first.click()
    expect(history.get_by_test_id("review")).to_have_count(2)
    expect(history.get_by_test_id("review").first).to_contain_text("Checked by hand <b>twice</b>")
    page.set_viewport_size({"width": 1280, "height": 1400})
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(output_dir / "puzzle-page.png"))

    # The generation page (admin is a trainer): the form with the pipeline's defaults.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Puzzles").click()
    page.get_by_role("link", name="Generation runs").click()
    expect(page.get_by_label("Budget (batches)")).to_have_value("4")
    expect(page.get_by_label("Solving prompt style")).to_have_value("completion")


def mine(page) -> int:
    return int(re.match(r"(\d+) of", page.get_by_test_id("progress-mine").inner_text()).group(1))


def test_review_queue_by_keyboard_and_buttons_then_bulk_reject(site, page, output_dir):
    sign_in(page, site)
    page.get_by_test_id("queue-link").click()
    expect(page.get_by_role("heading", name="Review queue")).to_be_visible()
    expect(page.get_by_test_id("guidelines")).to_contain_text("Approve")
    start = mine(page)
    item = page.get_by_test_id("queue-item")

    # Five reviews: three from the keyboard, two with the buttons; each one brings the next puzzle.
    seen = []
    for step, action in enumerate(["a", "r", "f", "Approve", "Reject"]):
        seen.append(item.get_attribute("data-item"))
        if len(action) == 1:
            page.locator("h1").click()  # not in the comment box
            page.keyboard.press(action)
        else:
            page.get_by_role("button", name=re.compile(f"^{action}")).click()
        expect(item).not_to_have_attribute("data-item", seen[-1])
        assert mine(page) == start + step + 1
    # A skip moves on without a verdict.
    skipped = item.get_attribute("data-item")
    page.locator("h1").click()
    page.keyboard.press("s")
    expect(item).not_to_have_attribute("data-item", skipped)
    assert mine(page) == start + 5 and len(set(seen)) == 5

    # An admin edits the guidelines; they are shown beside the queue (as markdown, escaped).
    page.get_by_text("Edit the guidelines").click()
    page.get_by_label("Markdown").fill("**Reject** any puzzle that <b>any</b> value solves.")
    page.get_by_role("button", name="Save the guidelines").click()
    guidelines = page.get_by_test_id("guidelines")
    expect(guidelines.locator("strong")).to_have_text("Reject")
    expect(guidelines).to_contain_text("<b>any</b> value solves")
    page.set_viewport_size({"width": 1280, "height": 1000})
    page.screenshot(path=str(output_dir / "review-queue.png"))

    # Bulk: select three unreviewed puzzles in the list and reject them at once.
    page.goto(f"{site.url}/puzzles/?review=none")
    boxes = page.get_by_test_id("select-puzzle")
    names = [page.get_by_test_id("puzzle-row").nth(i).get_attribute("data-name") for i in range(3)]
    for i in range(3):
        boxes.nth(i).check()
    expect(page.get_by_test_id("selected-count")).to_have_text("3 selected")
    page.get_by_role("button", name="Reject selected").click()
    expect(page.locator(".messages")).to_contain_text("Rejected 3 puzzles.")
    expect(page).to_have_url(re.compile(r"/puzzles/\?review=none$"))  # back to the list as it was filtered
    page.get_by_label("Review").select_option("reject")
    for name in names:
        expect(page.get_by_test_id("puzzle-row").filter(has_text=name)).to_contain_text("rejected")

    # A row's own button reviews it in place.
    page.get_by_label("Review").select_option("none")
    expect(page).to_have_url(re.compile(r"review=none"))
    expect(page.get_by_test_id("puzzle-count")).to_contain_text("match the filters")
    row = page.get_by_test_id("puzzle-row").filter(has_not_text="rejected").first
    name = row.get_attribute("data-name")
    row = page.locator(f'[data-testid="puzzle-row"][data-name="{name}"]')
    with page.expect_response(lambda response: "/review/" in response.url and response.ok):
        row.get_by_role("button", name=re.compile("^Flag ")).click()
    expect(row.get_by_test_id("review-cell")).to_contain_text("flagged")

    page.goto(f"{site.url}/puzzles/queue/")
    assert mine(page) == start + 9  # 5 in the queue, 3 in bulk, 1 from a row
