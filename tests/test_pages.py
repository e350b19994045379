"""Pages, sign-in, roles and refusals, on the configured database (PostgreSQL under `make test`)."""
import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from django.urls import reverse

from webapp.accounts.roles import is_reviewer, is_trainer, roles_of
from webapp.accounts.services import ensure_admin_account
from webapp.core.templatetags.code import highlight_code

pytestmark = pytest.mark.django_db


@pytest.fixture
def member(db):
    return User.objects.create_user("ada", password="correct horse battery staple")


@pytest.fixture
def signed_in(client, member):
    client.force_login(member)
    return client


@pytest.mark.parametrize("path", ["/", "/status/panel/"])
def test_anonymous_user_is_sent_to_login(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next={path}"


def test_login_page_and_health_are_public(client):
    assert client.get(reverse("login")).status_code == 200
    response = client.get("/healthz")
    assert response["Content-Type"] == "application/json"
    assert set(response.json()["checks"]) == {"database", "channel_layer", "broker", "workers", "model_worker",
                                              "chat_worker", "sandbox"}


def test_favicon_is_served(client):
    response = client.get("/favicon.ico", follow=True)
    assert response.status_code == 200 and response.redirect_chain[0][0].endswith("img/logo.svg")


def test_health_names_the_failing_part_with_503(client):
    # No Celery worker runs in this test process: workers and model worker must be reported down.
    response = client.get("/healthz")
    body = response.json()
    assert response.status_code == 503 and body["status"] == "down"
    assert "workers" in body["failing"] and "model_worker" in body["failing"]
    assert body["checks"]["database"]["ok"] is True


def test_sign_in_shows_home_with_navigation_and_flash(client, member):
    response = client.post(reverse("login"), {"username": "ada", "password": "correct horse battery staple"},
                           follow=True)
    html = response.content.decode()
    assert response.status_code == 200 and "Welcome, ada" in html
    assert "Signed in as ada." in html
    for label in ("Puzzles", "Chat", "Training", "Benchmarks"):
        assert label in html
    assert reverse("admin:index") not in html  # not staff


def test_wrong_password_is_refused(client, member):
    response = client.post(reverse("login"), {"username": "ada", "password": "nope"})
    assert response.status_code == 200 and "didn't match" in response.content.decode()


def test_logout_needs_post_and_signs_out(signed_in):
    assert signed_in.get(reverse("logout")).status_code == 405
    response = signed_in.post(reverse("logout"), follow=True)
    assert "You have been signed out." in response.content.decode()
    assert signed_in.get("/").status_code == 302


def test_post_without_csrf_token_is_refused(member):
    client = Client(enforce_csrf_checks=True)
    response = client.post(reverse("login"), {"username": "ada", "password": "correct horse battery staple"})
    assert response.status_code == 403
    assert "Request refused" in response.content.decode()
    client.force_login(member)
    assert client.post(reverse("logout")).status_code == 403


def test_unknown_url_gives_styled_404(signed_in, client):
    for c in (signed_in, Client()):
        response = c.get("/no/such/<page>")
        html = response.content.decode()
        assert response.status_code == 404
        assert "Page not found" in html and "/static/css/app.css" in html
        assert "<page>" not in html  # the path is escaped


def test_status_panel_renders_every_check(signed_in):
    html = signed_in.get("/status/panel/").content.decode()
    for label in ("Database", "Channel layer", "Task broker", "Celery workers", "Model worker", "Sandbox"):
        assert label in html


def test_admin_is_for_staff_only(signed_in, member):
    assert signed_in.get(reverse("admin:index")).status_code == 302
    member.is_staff = True
    member.save()
    assert signed_in.get(reverse("admin:index")).status_code == 200
    assert reverse("admin:index") in signed_in.get("/").content.decode()


def test_role_groups_exist_and_decide_permissions(member):
    assert set(Group.objects.values_list("name", flat=True)) >= {"reviewer", "trainer"}
    assert not is_reviewer(member) and not is_trainer(member) and roles_of(member) == []
    member.groups.add(Group.objects.get(name="reviewer"))
    assert is_reviewer(member) and not is_trainer(member) and roles_of(member) == ["reviewer"]
    boss = User.objects.create_user("boss", is_staff=True)
    assert is_trainer(boss) and is_reviewer(boss) and roles_of(boss)[0] == "admin"


def test_first_admin_is_created_once_without_taking_over_a_user(monkeypatch):
    User.objects.create_user("admin", password="their own password")
    monkeypatch.setenv("AUTODIDACT_ADMIN_PASSWORD", "s3cret-from-env")
    created = ensure_admin_account()
    assert created.username == "admin2" and created.generated is False
    assert Client().login(username="admin2", password="s3cret-from-env")
    assert Client().login(username="admin", password="their own password")  # untouched
    assert ensure_admin_account() is None


def test_generated_admin_password_works(monkeypatch):
    monkeypatch.delenv("AUTODIDACT_ADMIN_PASSWORD", raising=False)
    created = ensure_admin_account()
    assert created.generated and len(created.password) >= 12
    assert User.objects.get(username=created.username).is_superuser
    assert Client().login(username=created.username, password=created.password)


def test_code_blocks_are_highlighted_and_escaped():
    html = highlight_code('def f():\n    return "</pre><script>alert(1)</script>"')
    assert 'class="highlight"' in html
    assert "<script>" not in html and "&lt;script&gt;" in html
