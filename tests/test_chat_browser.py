"""The code chat in headless Chromium: the whole feedback dialog on the embedded default (the
packaged SmolLM2 model, a real model worker and sandbox), and hostile text that must never run."""
import os
import re
import subprocess
import sys

import pytest
from playwright.sync_api import expect

from tests.support import ROOT, LineReader, SiteProcess, embedded_env, sign_in_admin

PASSWORD = "chat-browser-password"
TESTS = ["assert sum_squares([1, 2, 3]) == 14", "assert sum_squares([]) == 0", "assert sum_squares([-2, 5]) == 29"]


@pytest.fixture(scope="module")
def dialog_site(tmp_path_factory):
    env = embedded_env(tmp_path_factory.mktemp("chat-dialog"), AUTODIDACT_ADMIN_PASSWORD=PASSWORD,
                       AUTODIDACT_PRELOAD_MODEL="1", AUTODIDACT_CHAT_MAX_TOKENS="160")
    process = SiteProcess(env)
    process.wait_until_up()
    yield process
    process.interrupt()


def sign_in(page, site):
    sign_in_admin(page, site, PASSWORD, "/chat/")
    expect(page.get_by_role("heading", name="New conversation")).to_be_visible()


def finished_results(answer):
    """The answer's test results once the sandbox has reported (not the 'running' placeholder)."""
    results = answer.get_by_test_id("test-results")
    expect(results.get_by_test_id("verdict")).to_be_visible(timeout=120_000)
    return results


def test_whole_feedback_dialog_in_the_browser(dialog_site, page, output_dir):
    sign_in(page, dialog_site)
    page.get_by_label("Task with tests").check()
    page.get_by_role("textbox", name=re.compile("^Task")).fill("Write a function sum_squares(numbers) that returns the sum of "
                                               "the squares of the numbers in a list.")
    page.get_by_label(re.compile("^Tests")).fill("\n".join(TESTS))
    page.get_by_role("button", name="Start").click()
    expect(page).to_have_url(re.compile(r"/chat/\d+/$"))
    expect(page.locator("#connection")).to_have_text("live")

    # The answer streams in (the model loads on first use), then its code is tested.
    first = page.locator("li.msg-assistant").first
    expect(first.get_by_test_id("stream")).not_to_be_empty(timeout=90_000)
    results = finished_results(first)
    expect(results.get_by_test_id("test-row")).to_have_count(len(TESTS))
    expect(page.get_by_test_id("turns")).to_have_text("1")

    # Run the tests again by hand: the same verdict comes back.
    verdict = results.get_by_test_id("verdict").inner_text()
    with page.expect_response(lambda response: "/run-tests/" in response.url):
        first.get_by_test_id("run-tests").click()
    expect(finished_results(page.locator("li.msg-assistant").first).get_by_test_id("verdict")).to_have_text(verdict)
    expect(page.get_by_role("button", name="Send feedback")).to_be_enabled()

    # Feedback drives a repair turn: streamed, re-tested, compared with the previous code.
    page.get_by_label(re.compile("^Feedback for a repair turn")).fill(
        "Return sum(x * x for x in numbers); an empty list gives 0.")
    page.get_by_role("button", name="Send feedback").click()
    expect(page.locator("li.msg-user").last).to_contain_text("an empty list gives 0")
    repair = page.locator("li.msg-assistant").nth(1)
    expect(repair).to_contain_text("repair · turn 2", timeout=30_000)
    repair_results = finished_results(repair)
    expect(repair_results.get_by_test_id("test-row")).to_have_count(len(TESTS))
    expect(repair.get_by_test_id("diff").or_(repair.get_by_test_id("unchanged"))).to_be_visible()
    expect(page.get_by_test_id("turns")).to_have_text("2")
    expect(repair.locator(".md .highlight")).to_be_visible()  # the repaired code, highlighted
    page.set_viewport_size({"width": 1280, "height": 1000})
    repair.scroll_into_view_if_needed()
    page.screenshot(path=str(output_dir / "chat-dialog.png"))


@pytest.mark.timeout(600)  # the replay loads the model at full precision and samples every turn
def test_live_study_in_the_browser(dialog_site, page, output_dir):
    """A trainer starts a replayed study; a person then gives feedback on a task the model failed,
    in the chat, and the study page shows the people's curve beside the simulated kinds."""
    sign_in_admin(page, dialog_site, PASSWORD, "/studies/")
    form = page.get_by_test_id("study-form")
    form.get_by_label("Title").fill("browser study")
    form.get_by_label("hint", exact=True).uncheck()  # no feedback model to load
    form.get_by_label("Feedback turns").fill("1")
    form.get_by_label(re.compile("^Only the first")).fill("2")
    form.get_by_label("Max new tokens").fill("40")
    form.get_by_role("button", name="Start the replay").click()
    expect(page).to_have_url(re.compile(r"/studies/runs/\d+/$"))
    study_url = page.url
    panel = page.get_by_test_id("run-panel")
    expect(panel).not_to_have_attribute("data-status", re.compile("queued|running"), timeout=400_000)
    assert panel.get_attribute("data-status") == "succeeded", panel.inner_text()
    expect(page.get_by_test_id("curve-row")).to_have_count(2)
    expect(page.get_by_test_id("study-chart").locator("svg")).to_be_visible()

    page.get_by_test_id("take-task").click()
    expect(page).to_have_url(re.compile(r"/chat/\d+/$"))
    expect(page.get_by_test_id("study-banner")).to_be_visible()
    first = page.locator("li.msg-assistant").first
    expect(finished_results(first).get_by_test_id("verdict")).not_to_contain_text("passed")
    page.get_by_label(re.compile("^Feedback for a repair turn")).fill("Read the task again: the tests show what to return.")
    page.get_by_role("button", name="Send feedback").click()
    repair = page.locator("li.msg-assistant").nth(1)
    expect(repair).to_contain_text("repair · turn 2", timeout=60_000)
    finished_results(repair)
    page.screenshot(path=str(output_dir / "study-dialog.png"))
    page.get_by_test_id("next-task").click()  # out of turns: the next failed task, or the study when none is left

    page.goto(study_url)
    people = page.locator('[data-testid="curve-row"][data-kind="live"]')
    expect(people).to_be_visible()
    expect(people.get_by_test_id("live-count")).to_have_text("1 dialog")
    page.screenshot(path=str(output_dir / "study-page.png"), full_page=True)


# --- hostile text ---------------------------------------------------------------------------------
HOSTILE = """Here you go <script>window.__xss = 1; fetch('/xss-trap/script')</script>
<img src="/xss-trap/img" onerror="window.__xss = 2">
<a href="javascript:window.__xss=3">html link</a> and [markdown link](javascript:window.__xss=4)
<div hx-get="/xss-trap/hx-get" hx-trigger="load">htmx get</div>
<button hx-on:click="window.__xss=5" hx-post="/xss-trap/hx-post" hx-trigger="load">press</button>
<span hx-on="htmx:load: window.__xss=6" hx-get="/xss-trap/hx-on" hx-trigger="load">span</span>
<svg onload="window.__xss=7"><circle r="4"/></svg>
<iframe src="/xss-trap/iframe"></iframe>
<style>body { background: url(/xss-trap/css) }</style>
![image](/xss-trap/md-img)
<details open ontoggle="window.__xss=8">toggle</details>
<a href="/xss-trap/plain" onmouseover="window.__xss=9" style="position:fixed;inset:0">cover</a>

```python
print("</code></pre><script>window.__xss=10</script>")
```
"""
# What a sanitiser must leave out of the conversation (checked in the live DOM).
DANGEROUS_DOM = """() => {
  const thread = document.getElementById('thread');
  const found = [];
  for (const el of thread.querySelectorAll('*')) {
    if (['SCRIPT', 'IMG', 'IFRAME', 'SVG', 'STYLE', 'OBJECT', 'EMBED', 'FORM'].includes(el.tagName.toUpperCase())
        && !el.closest('form.rating-form, .msg-actions')) found.push(el.tagName);
    for (const attr of el.attributes) {
      const name = attr.name.toLowerCase();
      const mine = el.closest('.msg-actions, .msg-head, .stop-button');
      if (name.startsWith('on') || name === 'style' || name === 'src'
          || ((name.startsWith('hx-') || name.startsWith('data-hx')) && name !== 'hx-disable' && !mine)
          || (name === 'href' && /^\\s*javascript:/i.test(attr.value))) found.push(el.tagName + '[' + name + ']');
    }
  }
  return found;
}"""


@pytest.fixture(scope="module", autouse=True)
def sync_orm_beside_playwright():
    """Playwright's sync API keeps an event loop running in the test thread; the ORM calls made
    here (and pytest-django's flush) are plain sync code, so Django's async guard is lifted."""
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "1"
    yield
    if previous is None:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


def group_send(group: str, event: dict) -> None:
    """Through the real channel layer, from a thread of its own (this one runs Playwright's loop)."""
    import threading

    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    errors = []

    def send():
        try:
            async_to_sync(get_channel_layer().group_send)(group, event)
        except Exception as exc:  # reported in the test thread
            errors.append(exc)

    thread = threading.Thread(target=send)
    thread.start()
    thread.join(10)
    assert not errors, errors


@pytest.fixture(scope="module")
def live_site(django_db_setup, django_db_blocker, redis_url, tmp_path_factory):
    """The web process and a model worker (tiny random model) on pytest's database and Redis."""
    from django.db import connection

    from engine.lm.tiny import build_tiny_model
    from tests.support import die_with_parent, free_port, start_worker, stop_worker, wait_for_http

    with django_db_blocker.unblock():
        db = connection.settings_dict
        database_url = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    tiny = str(build_tiny_model(tmp_path_factory.mktemp("xss-tiny")))
    env = {"DATABASE_URL": database_url, "AUTODIDACT_MODEL": tiny, "AUTODIDACT_PRELOAD_MODEL": "1",
           "AUTODIDACT_CHAT_MAX_TOKENS": "16", "AUTODIDACT_DATA_DIR": str(tmp_path_factory.mktemp("xss-data"))}
    worker, _ = start_worker("gpu-xss", "gpu", "solo", env)
    port, web = free_port(), None
    try:
        web = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "webapp.asgi:application"],
            cwd=ROOT, env={**os.environ, **env, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, start_new_session=True, preexec_fn=die_with_parent)
        LineReader(web.stdout)  # drained, so the process never blocks on a full pipe
        wait_for_http(f"http://127.0.0.1:{port}/accounts/login/")
        yield f"http://localhost:{port}"
    finally:
        if web is not None:
            stop_worker(web)
        stop_worker(worker)


@pytest.mark.django_db(transaction=True)
def test_hostile_model_output_and_feedback_never_run(live_site, page):
    from django.contrib.auth.models import User

    from webapp.chat.model_replies import group_name
    from webapp.chat.models import Conversation, Message

    user = User.objects.create_user("mallory", password=PASSWORD)
    conversation = Conversation.objects.create(owner=user, kind="task", problem="Add.", title="<b>xss</b>",
                                               tests=["assert add(1, 2) == 3"], entry_point="add")
    task = Message.objects.create(conversation=conversation, owner=user, role="user", kind="task",
                                  content="Add two numbers. " + HOSTILE)
    answer = Message.objects.create(conversation=conversation, owner=user, role="assistant", parent=task, turn=1,
                                    content=HOSTILE, code="def add(a, b):\n    return a - b\n",
                                    verdict={"status": "failed", "detail": HOSTILE, "tests": [
                                        {"test": "assert add(1, 2) == 3", "status": "failed", "detail": HOSTILE}]})
    feedback = Message.objects.create(conversation=conversation, owner=user, role="user", kind="feedback",
                                      parent=answer, content=HOSTILE)
    streaming = Message.objects.create(conversation=conversation, owner=user, role="assistant", kind="repair",
                                       parent=feedback, turn=2, status="streaming")
    Conversation.objects.filter(pk=conversation.pk).update(leaf=streaming)

    trapped, dialogs = [], []
    page.on("request", lambda request: "xss-trap" in request.url and trapped.append(request.url))
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(live_site + f"/accounts/login/?next=/chat/{conversation.pk}/")
    page.get_by_label("Username").fill("mallory")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#connection")).to_have_text("live")

    # Streamed tokens: shown as text, never parsed as HTML.
    for seq, text in enumerate([HOSTILE[:200], HOSTILE[200:]]):
        Message.objects.filter(pk=streaming.pk).update(content=HOSTILE[: 200 * (seq + 1)] if seq == 0 else HOSTILE,
                                                       chunks=seq + 1)
        group_send(group_name(conversation.pk), {
            "type": "chat.event", "kind": "chunk", "message": streaming.pk, "seq": seq, "text": text,
            "done": False, "status": "streaming", "finish_reason": None})
    stream = page.locator(f"#msg-{streaming.pk} [data-testid=stream]")
    expect(stream).to_contain_text("<script>window.__xss = 1;")
    assert page.evaluate(DANGEROUS_DOM) == []

    # The finished message comes back rendered from markdown and sanitised.
    Message.objects.filter(pk=streaming.pk).update(status="complete", chunks=3)
    group_send(group_name(conversation.pk), {
        "type": "chat.event", "kind": "chunk", "message": streaming.pk, "seq": 2, "text": "", "done": True,
        "status": "complete", "finish_reason": "eos"})
    expect(page.locator(f"#msg-{streaming.pk} .md")).to_contain_text("markdown link")

    # A person's feedback with the same payloads, typed into the page and sent for real.
    page.get_by_label(re.compile("^Feedback for a repair turn")).fill(HOSTILE)
    page.get_by_role("button", name="Send feedback").click()
    expect(page.locator("li.msg-feedback, li.msg-user").last).to_contain_text("markdown link")
    expect(page.locator("li.msg-assistant").last).not_to_have_attribute("data-status", "streaming", timeout=30_000)

    page.wait_for_load_state("networkidle")  # the finished turn's re-render has landed
    for link in page.locator("#thread .md a:not([href])").all():  # stripped javascript: links do nothing
        link.click()
    for element in page.locator("#thread .md a, #thread .md details, #thread .md p").all()[:60]:
        box = element.bounding_box()  # None once a re-render has replaced the element: nothing left to hover
        if box and box["height"] > 0:
            element.hover(timeout=2_000)
    page.wait_for_timeout(500)
    assert page.evaluate(DANGEROUS_DOM) == []
    assert page.evaluate("window.__xss") is None
    assert dialogs == [] and trapped == [], (dialogs, trapped)
    assert page.title().startswith("<b>xss</b>")  # the title is text, escaped


# --- what a new user trips over -------------------------------------------------------------------
ANGLE_TEXT = "What does <div> do in HTML? Use List<int>; compare a<b and b>c"
STOPPED_REPLY = ("Here is a plan.\n\n" + "A paragraph that takes room on the screen.\n\n" * 12
                 + "```python\ndef add(a, b):\n    return a +")


def sign_in_as(page, site_url: str, username: str, next_path: str) -> None:
    page.goto(f"{site_url}/accounts/login/?next={next_path}")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def task_conversation(username: str):
    """A task chat whose newest answer was stopped inside its code block and has three test rows."""
    from django.contrib.auth.models import User

    from webapp.chat.models import Conversation, Message

    user = User.objects.create_user(username, password=PASSWORD)
    conversation = Conversation.objects.create(owner=user, kind="task", problem="Add.", title="Add",
                                               tests=["assert add(1, 2) == 3"] * 3, entry_point="add")
    task = Message.objects.create(conversation=conversation, owner=user, role="user", kind="task",
                                  content=ANGLE_TEXT)
    rows = [{"test": "assert add(1, 2) == 3", "status": "failed", "detail": "SyntaxError"}] * 3
    answer = Message.objects.create(conversation=conversation, owner=user, role="assistant", parent=task, turn=1,
                                    status="cancelled", content=STOPPED_REPLY, code="def add(a, b):\n    return a +\n",
                                    verdict={"status": "error", "detail": "invalid syntax", "tests": rows})
    Conversation.objects.filter(pk=conversation.pk).update(leaf=answer)
    return conversation, answer


@pytest.mark.django_db(transaction=True)
def test_text_shows_as_typed_and_the_newest_answer_is_not_under_the_composer(live_site, page, output_dir):
    conversation, answer = task_conversation("newcomer")
    page.set_viewport_size({"width": 1280, "height": 800})
    sign_in_as(page, live_site, "newcomer", f"/chat/{conversation.pk}/")
    expect(page.locator("#connection")).to_have_text("live")

    # Angle brackets are text: shown as typed, not eaten as tags.
    expect(page.locator("li.msg-user .md")).to_have_text(ANGLE_TEXT)

    # A reply stopped mid-code shows its code as code, with no stray fence.
    last = page.locator(f"#msg-{answer.pk}")
    expect(last.locator(".md .highlight")).to_contain_text("return a +")
    assert "```" not in last.locator(".md").inner_text()

    # Scrolled to the end, the newest answer's test rows and actions sit above the composer.
    page.wait_for_function("window.scrollY > 0")
    answer_bottom = page.evaluate(f"document.querySelector('#msg-{answer.pk}').getBoundingClientRect().bottom")
    composer_top = page.evaluate("document.querySelector('.composer').getBoundingClientRect().top")
    assert answer_bottom <= composer_top + 1, (answer_bottom, composer_top)
    page.screenshot(path=str(output_dir / "chat-last-message.png"))


@pytest.mark.django_db(transaction=True)
def test_signing_out_in_another_tab_keeps_the_typed_text_and_says_so(live_site, page):
    conversation, _ = task_conversation("leaver")
    sign_in_as(page, live_site, "leaver", f"/chat/{conversation.pk}/")
    expect(page.locator("#connection")).to_have_text("live")

    other = page.context.new_page()  # the same browser session, another tab
    other.goto(f"{live_site}/chat/")
    other.get_by_test_id("user-menu").click()
    other.get_by_role("button", name="Sign out").click()
    expect(other.get_by_role("button", name="Sign in")).to_be_visible()

    # The open socket is closed by the server with 4401; the page says so and stops reconnecting.
    expect(page.locator("#connection")).to_have_text("signed out")
    page.locator("#message-text").fill("my carefully typed question")
    page.get_by_test_id("send").click()
    expect(page.locator("#chat-alert")).to_contain_text("You were signed out")
    expect(page.locator("#chat-alert").get_by_role("link", name="Sign in")).to_be_visible()
    expect(page.locator("#message-text")).to_have_value("my carefully typed question")
    expect(page.locator(".topbar")).to_have_count(1)  # no login page swapped into the conversation
    expect(page.locator("#connection")).to_have_text("signed out")


SOCKET_CLOSE_CODE = """async (path) => await new Promise((resolve) => {
  const socket = new WebSocket(location.origin.replace('http', 'ws') + path);
  socket.onclose = (event) => resolve(event.code);
})"""


@pytest.mark.django_db(transaction=True)
def test_websocket_refusals_reach_the_browser_as_close_codes(live_site, page):
    page.goto(f"{live_site}/accounts/login/")
    assert page.evaluate(SOCKET_CLOSE_CODE, "/ws/chat/1/") == 4401  # not signed in
    conversation, _ = task_conversation("owner")
    sign_in_as(page, live_site, "owner", f"/chat/{conversation.pk}/")
    expect(page.locator("#connection")).to_have_text("live")
    assert page.evaluate(SOCKET_CLOSE_CODE, "/ws/chat/987654/") == 4404  # no such conversation
