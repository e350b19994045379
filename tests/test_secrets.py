"""Secrets stay secret: the teacher's API key and credentials in its URL, the Django secret key, the
database password and the admin's password never reach a page, an export or a log line, even after
a trace run has talked to that teacher and the admin has signed in through the form.

(A sandbox run's environment is covered in test_sandbox_hostile: a fresh sandbox started with a
secret in the service's environment cannot find it in its own or any other process's environ.)
"""
from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.conf import settings as django_settings
from django.db import connections
from django.test import Client
from django.urls import reverse

from tests.test_permission_matrix import MATRIX, PAGES, world  # noqa: F401 - the fixture is used by name

TEACHER_KEY = "sk-sweep-5b1e0c"
URL_PASSWORD = "pw-in-url-77c1"
ADMIN_PASSWORD = "admin-pw-9d2f4e"
DATABASE_PASSWORD = "db-pw-3a8c51"


class EchoingTeacher(BaseHTTPRequestHandler):
    """A careless proxy: it refuses every request and echoes the request's headers back."""

    def do_POST(self):  # noqa: N802 - the stdlib's name
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps({"error": f"bad key: {self.headers.get('Authorization')}"}).encode()
        self.send_response(401)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def teacher_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), EchoingTeacher)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://teacher:{URL_PASSWORD}@127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


class Everything(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(logging.Formatter("%(name)s %(message)s").format(record))


def body_of(response) -> str:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content).decode(errors="replace")
    return response.content.decode(errors="replace")


def test_no_page_export_or_log_line_shows_a_secret(world, settings, teacher_url, monkeypatch):  # noqa: F811
    from django.contrib.auth.models import User

    from webapp.accounts.services import ensure_admin_account
    from webapp.distill.models import TraceRun
    from webapp.distill.trace_runs import execute, start_trace_run
    from webapp.serving import teacher

    settings.AUTODIDACT_TEACHER_URL, settings.AUTODIDACT_TEACHER_MODEL = teacher_url, "teacher-x"
    settings.AUTODIDACT_TEACHER_KEY = TEACHER_KEY
    if not django_settings.DATABASES["default"].get("PASSWORD"):
        # A URL without one (trust auth, as in CI): give the settings one, which trust auth ignores,
        # so the sweep below always has a database password to look for.
        monkeypatch.setitem(django_settings.DATABASES["default"], "PASSWORD", DATABASE_PASSWORD)
        monkeypatch.setitem(connections["default"].settings_dict, "PASSWORD", DATABASE_PASSWORD)
    secrets = {"teacher key": TEACHER_KEY, "password in the teacher URL": URL_PASSWORD,
               "admin password": ADMIN_PASSWORD, "SECRET_KEY": django_settings.SECRET_KEY,
               "database password": django_settings.DATABASES["default"]["PASSWORD"]}

    root = logging.getLogger()
    handler, level = Everything(), root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        User.objects.filter(is_superuser=True).delete()
        monkeypatch.setenv("AUTODIDACT_ADMIN_USER", "boss")
        monkeypatch.setenv("AUTODIDACT_ADMIN_PASSWORD", ADMIN_PASSWORD)
        admin = ensure_admin_account()
        assert admin is not None and not admin.generated

        teacher.close()  # the teacher comes from the settings above
        try:
            run = start_trace_run(User.objects.get(username="boss"), {"samples": 1}, limit=2, enqueue=False)
            run = execute(run.pk)
        finally:
            teacher.close()
        assert run.status == TraceRun.Status.FAILED and "did not answer 2 of 2" in run.error, (run.status, run.error)
        assert run.teacher_info["name"].startswith("teacher-x @ 127.0.0.1:")
        # every request was refused, and the traces say so (a resumed run asks again)
        assert [(t.status, t.detail) for t in run.traces.all()] == [("teacher error", "the request failed (http-401)")] * 2

        browser = Client()
        signed_in = browser.post(reverse("login"), {"username": "boss", "password": ADMIN_PASSWORD})
        assert signed_in.status_code == 302 and "/accounts/login/" not in signed_in["Location"]
        objects = {**world, "traces": run.pk, "trace": run.traces.first().pk}
        pages = {}
        for name, (method, kwargs, _expected, *_form) in MATRIX.items():
            if method != "get" and name not in PAGES:
                continue
            url = "/" + name if "." in name else reverse(name, kwargs={
                key: objects.get(value, value) if isinstance(value, str) else value for key, value in kwargs.items()})
            response = browser.get(url)
            assert response.status_code != 500, url
            pages[url] = body_of(response)
        for url in ("/admin/", "/admin/auth/user/"):
            pages[url] = body_of(browser.get(url))
        assert len(pages) >= 35 and "teacher-x @ 127.0.0.1" in pages[reverse("distill:run", args=[run.pk])]
    finally:
        root.removeHandler(handler)
        root.setLevel(level)

    leaks = [f"{what} in {where}" for what, secret in secrets.items()
             for where, text in [*pages.items(), *((f"log line {i}", line) for i, line in enumerate(handler.lines))]
             if secret in text]
    assert not leaks, leaks
    assert handler.lines, "nothing was logged: the sweep of log lines would prove nothing"
