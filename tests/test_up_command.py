"""The main job, started as a person would: `python manage.py up`, then Ctrl-C."""
import http.cookiejar
import json
import os
import re
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from tests.support import ROOT, SiteProcess, embedded_env, still_running


class Browserless:
    """A cookie-keeping HTTP client that does not follow redirects (to see them)."""

    class _NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    def __init__(self, base: str):
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar), self._NoRedirect)

    def request(self, path: str, data: dict | None = None, headers: dict | None = None):
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        req = urllib.request.Request(self.base + path, data=body, headers=headers or {})
        try:
            with self.opener.open(req, timeout=30) as response:
                return response.status, dict(response.headers), response.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers), err.read().decode()

    def sign_in(self, username: str, password: str) -> int:
        _, _, html = self.request("/accounts/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
        status, headers, _ = self.request(
            "/accounts/login/", {"csrfmiddlewaretoken": token, "username": username, "password": password},
            headers={"Referer": self.base + "/accounts/login/"},
        )
        return status


@pytest.fixture
def embedded_site(tmp_path):
    site = SiteProcess(embedded_env(tmp_path / "data"))
    yield site
    if site.proc.poll() is None:
        site.kill()


def test_embedded_main_job_serves_pages_and_health_then_stops_cleanly(embedded_site):
    seconds = embedded_site.wait_until_up()
    password = embedded_site.admin_password()
    assert "Embedded mode" in embedded_site.output.text()
    web = Browserless(embedded_site.url)

    status, headers, _ = web.request("/")
    assert status == 302 and headers["Location"].startswith("/accounts/login/")
    status, _, body = web.request("/healthz")
    report = json.loads(body)
    assert status == 200, report
    assert report["mode"] == "embedded" and report["status"] == "ok"
    assert report["checks"]["model_worker"]["ok"]
    assert report["checks"]["sandbox"]["info"]["level"] == "namespaces+uid" and report["warnings"] == []

    assert web.sign_in("admin", password) == 302
    status, _, html = web.request("/")
    assert status == 200 and "Welcome, admin" in html
    status, _, css = web.request("/static/css/app.css")
    assert status == 200 and ".topbar" in css
    status, _, js = web.request("/static/django_htmx/htmx-2.min.js")
    assert status == 200 and "htmx" in js

    children = embedded_site.descendants()
    assert embedded_site.interrupt(timeout=30) == 0
    assert still_running(children) == []
    assert "Stopped." in embedded_site.output.text()
    print(f"embedded main job: first page ready {seconds:.1f} s after start")


def test_second_start_keeps_data_and_creates_no_second_admin(tmp_path):
    env = embedded_env(tmp_path / "data", AUTODIDACT_ADMIN_PASSWORD="a-known-password")
    for attempt in range(2):
        # The second start is a script's background job: SIGINT ignored, yet Ctrl-C still stops it.
        site = SiteProcess(env, sigint_ignored=attempt == 1)
        try:
            site.wait_until_up()
            created = "Created admin account" in site.output.text()
            assert created == (attempt == 0)
            assert Browserless(site.url).sign_in("admin", "a-known-password") == 302
        finally:
            assert site.interrupt(timeout=30) == 0
        assert " INFO " not in site.output.text()  # a newcomer's terminal: warnings only


def test_a_run_queued_while_the_main_job_was_down_is_taken_when_it_starts(tmp_path):
    """Embedded mode's broker is memory: a run queued with no worker up (here by a command) has no
    message left once that process exits. The next start sends it to the workers again."""
    env = embedded_env(tmp_path / "data")
    queued = subprocess.run([sys.executable, "manage.py", "benchmark", "humaneval", "--queue", "--limit", "1",
                             "--n", "1", "--k", "1", "--max-tokens", "8", "--temperature", "0"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert queued.returncode == 0, queued.stderr[-2000:]
    assert "queued benchmark run 1 (embedded mode" in queued.stdout
    database = tmp_path / "data" / "autodidact.sqlite3"

    def status() -> str:
        with sqlite3.connect(database) as db:
            return db.execute("SELECT status, error FROM evaluation_benchmarkrun WHERE id = 1").fetchone()

    assert status()[0] == "queued"
    site = SiteProcess(env)
    try:
        site.wait_until_up()
        assert "sent to the workers again: 1 BenchmarkRun" in site.output.text()
        deadline = time.monotonic() + 180
        while status()[0] in ("queued", "running", "evaluating") and time.monotonic() < deadline:
            time.sleep(1)
        assert status() == ("succeeded", "")
    finally:
        assert site.interrupt(timeout=30) == 0


def test_busy_port_is_a_clear_error(embedded_site, tmp_path):
    embedded_site.wait_until_up()
    out = subprocess.run([sys.executable, "manage.py", "up", "--port", str(embedded_site.port)], cwd=ROOT,
                         env=embedded_env(tmp_path / "other"), capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "cannot listen on" in out.stderr


def test_server_mode_runs_the_procfile_and_leaves_no_process_behind(redis_url, tmp_path):
    env = {**os.environ, "AUTODIDACT_DATA_DIR": str(tmp_path / "data"), "PYTHONUNBUFFERED": "1",
           "AUTODIDACT_ADMIN_PASSWORD": "server-mode-pw"}
    site = SiteProcess(env)
    try:
        site.wait_until_up(timeout=120)
        for name in ("web", "worker-verify", "worker-gpu", "worker-chat", "beat"):
            assert re.search(rf"^{name}\s+\| started \(pid \d+\)", site.output.text(), re.M), name
        web = Browserless(site.url)
        report = None
        for _ in range(40):  # workers finish booting a little after the web server listens
            status, _, body = web.request("/healthz")
            report = json.loads(body)
            if status == 200:
                break
            import time
            time.sleep(0.5)
        assert report["status"] == "ok" and report["mode"] == "server", report
        assert report["checks"]["chat_worker"]["ok"] and report["warnings"] == [], report
        children = site.descendants()
        assert len(children) >= 6  # 5 Procfile processes + the verify worker's pool
        assert site.interrupt(timeout=60) == 0
        assert still_running(children) == []
    finally:
        if site.proc.poll() is None:
            site.kill()


def test_health_says_so_when_the_sandbox_falls_back(tmp_path):
    site = SiteProcess(embedded_env(tmp_path / "data", AUTODIDACT_SANDBOX_LEVEL="rlimits"))
    try:
        site.wait_until_up()
        status, _, body = Browserless(site.url).request("/healthz")
        report = json.loads(body)
        assert report["checks"]["sandbox"]["detail"].startswith("FALLBACK isolation: rlimits")
        assert any("sandbox fallback" in warning for warning in report["warnings"])
    finally:
        site.interrupt()
