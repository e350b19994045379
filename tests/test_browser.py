"""A person in headless Chromium: sign in, see the navigation and live status, sign out."""
import pytest
from playwright.sync_api import expect

from tests.support import SiteProcess, embedded_env

PASSWORD = "browser-test-password"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    process = SiteProcess(embedded_env(tmp_path_factory.mktemp("browser-site"), AUTODIDACT_ADMIN_PASSWORD=PASSWORD))
    process.wait_until_up()
    yield process
    process.interrupt()


def test_sign_in_navigate_and_sign_out(site, page, output_dir):
    page.goto(site.url + "/")
    expect(page).to_have_url(site.url + "/accounts/login/?next=/")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()

    expect(page.get_by_role("heading", name="Welcome, admin")).to_be_visible()
    expect(page.locator(".message-success")).to_have_text("Signed in as admin.")
    nav = page.get_by_role("navigation", name="Main")
    for label in ("Puzzles", "Chat", "Training", "Benchmarks", "Admin"):
        expect(nav.get_by_text(label, exact=True)).to_be_visible()
    # The status card is filled in by htmx from /status/panel/ (vendored script, no CDN).
    expect(page.locator("#system-status")).to_contain_text("all parts up", timeout=15000)
    expect(page.locator(".highlight .k").first).to_be_visible()  # Pygments-highlighted code
    page.screenshot(path=str(output_dir / "home.png"), full_page=True)
    assert (output_dir / "home.png").stat().st_size > 10_000

    page.get_by_test_id("user-menu").click()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.locator(".messages")).to_contain_text("You have been signed out.")
    page.goto(site.url + "/")
    expect(page).to_have_url(site.url + "/accounts/login/?next=/")


def test_wrong_password_and_unknown_page(site, page, output_dir):
    page.goto(site.url + "/accounts/login/")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill("wrong")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("didn't match")
    response = page.goto(site.url + "/nowhere/")
    assert response.status == 404
    expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
    # Styled: the site's stylesheet applies (the brand bar is there and laid out).
    assert page.locator(".topbar").bounding_box()["height"] > 30


def test_narrow_screen_menu(site, browser, output_dir):
    context = browser.new_context(viewport={"width": 390, "height": 800})
    page = context.new_page()
    page.goto(site.url + "/accounts/login/")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    nav_link = page.get_by_role("navigation", name="Main").get_by_text("Admin", exact=True)
    expect(nav_link).to_be_hidden()
    page.locator("label.nav-toggle-label").click()
    expect(nav_link).to_be_visible()
    page.screenshot(path=str(output_dir / "home-narrow.png"))
    context.close()
