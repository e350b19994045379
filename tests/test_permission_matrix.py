"""Who may do what, as one table: every URL route × anonymous / user / reviewer / trainer / admin,
and a second user's objects. A new route without a row fails the test, so a page cannot ship with
its access unconsidered. Each request runs in a savepoint that is rolled back, so a delete or a
promotion by one role does not change what the next role meets.

Outcomes: "ok" (served or refused for its input: not a login redirect, 403 or 404), "login" (a
redirect to the sign-in page), "denied" (403), "hidden" (404: another user's object)."""
from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

ROLES = ("anon", "user", "reviewer", "trainer", "admin")
EVERYONE = dict.fromkeys(ROLES, "ok")
SIGNED_IN = {"anon": "login", "user": "ok", "reviewer": "ok", "trainer": "ok", "admin": "ok"}
REVIEWERS = {"anon": "login", "user": "denied", "reviewer": "ok", "trainer": "denied", "admin": "ok"}
TRAINERS = {"anon": "login", "user": "denied", "reviewer": "denied", "trainer": "ok", "admin": "ok"}
ADMINS = {"anon": "login", "user": "denied", "reviewer": "denied", "trainer": "denied", "admin": "ok"}
# Another user's conversation: every signed-in role but its owner gets a 404 (it is not theirs to know of).
OTHERS = {"anon": "login", "user": "hidden", "reviewer": "hidden", "trainer": "hidden", "admin": "hidden"}

# route name -> (method, URL kwargs from the objects, expected outcome per role[, form data])
MATRIX = {
    "favicon.ico": ("get", {}, EVERYONE),  # unnamed: its path
    "healthz": ("get", {}, EVERYONE),
    "login": ("get", {}, EVERYONE),
    "logout": ("post", {}, dict.fromkeys(ROLES, "login")),  # signed out, to the sign-in page
    "home": ("get", {}, SIGNED_IN),
    "status-panel": ("get", {}, SIGNED_IN),
    "chat:index": ("get", {}, SIGNED_IN),
    "chat:new": ("post", {}, SIGNED_IN),
    "chat:export": ("get", {}, SIGNED_IN),
    "chat:conversation": ("get", {"conversation_id": "conversation"}, OTHERS),
    "chat:body": ("get", {"conversation_id": "conversation"}, OTHERS),
    "chat:send": ("post", {"conversation_id": "conversation"}, OTHERS),
    "chat:feedback": ("post", {"conversation_id": "conversation"}, OTHERS),
    "chat:rename": ("post", {"conversation_id": "conversation"}, OTHERS),
    "chat:model": ("post", {"conversation_id": "conversation"}, OTHERS),
    "chat:delete": ("post", {"conversation_id": "conversation"}, OTHERS),
    "chat:stop": ("post", {"message_id": "message"}, OTHERS),
    "chat:regenerate": ("post", {"message_id": "message"}, OTHERS),
    "chat:edit": ("post", {"message_id": "message"}, OTHERS),
    "chat:show": ("post", {"message_id": "message"}, OTHERS),
    "chat:run-tests": ("post", {"message_id": "message"}, OTHERS),
    "chat:rate": ("post", {"message_id": "message"}, OTHERS),
    "puzzles:list": ("get", {}, SIGNED_IN),
    "puzzles:detail": ("get", {"puzzle_id": "puzzle"}, SIGNED_IN),
    "puzzles:review": ("post", {"puzzle_id": "puzzle"}, REVIEWERS),
    "puzzles:edit": ("post", {"puzzle_id": "puzzle"}, REVIEWERS),
    "puzzles:solve": ("post", {"puzzle_id": "puzzle"}, SIGNED_IN),
    "puzzles:discuss": ("post", {"puzzle_id": "puzzle"}, SIGNED_IN),
    "puzzles:queue": ("get", {}, SIGNED_IN),  # read-only for non-reviewers: no verdict buttons
    "puzzles:queue-review": ("post", {}, REVIEWERS, {"item": "puzzle", "verdict": "approve"}),
    "puzzles:bulk-review": ("post", {}, REVIEWERS),
    "puzzles:guidelines": ("post", {}, ADMINS),
    "puzzles:generate": ("post", {}, TRAINERS),
    "puzzles:run": ("get", {"run_id": "generation"}, SIGNED_IN),
    "puzzles:run-progress": ("get", {"run_id": "generation"}, SIGNED_IN),
    "puzzles:run-cancel": ("post", {"run_id": "generation"}, TRAINERS),
    "puzzles:run-resume": ("post", {"run_id": "generation"}, TRAINERS),
    "training:runs": ("post", {}, TRAINERS),
    "training:run": ("get", {"run_id": "round"}, SIGNED_IN),
    "training:run-progress": ("get", {"run_id": "round"}, SIGNED_IN),
    "training:run-cancel": ("post", {"run_id": "round"}, TRAINERS),
    "training:run-resume": ("post", {"run_id": "round"}, TRAINERS),
    "training:models": ("get", {}, SIGNED_IN),
    "training:promote": ("post", {"version_id": "version"}, ADMINS),
    "training:rollback": ("post", {}, ADMINS),
    "evaluation:index": ("post", {}, TRAINERS),
    "evaluation:run": ("get", {"run_id": "benchmark"}, SIGNED_IN),
    "evaluation:run-progress": ("get", {"run_id": "benchmark"}, SIGNED_IN),
    "evaluation:run-cancel": ("post", {"run_id": "benchmark"}, TRAINERS),
    "evaluation:run-resume": ("post", {"run_id": "benchmark"}, TRAINERS),
    "evaluation:task": ("get", {"run_id": "benchmark", "position": 0}, SIGNED_IN),
    "evaluation:export": ("get", {"run_id": "benchmark", "fmt": "jsonl"}, SIGNED_IN),
    "studies:index": ("post", {}, TRAINERS),
    "studies:run": ("get", {"run_id": "study"}, SIGNED_IN),
    "studies:run-progress": ("get", {"run_id": "study"}, SIGNED_IN),
    "studies:run-cancel": ("post", {"run_id": "study"}, TRAINERS),
    "studies:run-resume": ("post", {"run_id": "study"}, TRAINERS),
    "studies:task": ("get", {"run_id": "study", "task_id": 11}, SIGNED_IN),
    "studies:take": ("post", {"run_id": "study"}, {**REVIEWERS, "trainer": "ok"}),  # reviewers and trainers
    "studies:export": ("get", {"run_id": "study"}, SIGNED_IN),
    # someone else's study dialog: refused by name (a study's participants are not secret)
    "studies:leave": ("post", {"dialog_id": "dialog"}, {**ADMINS, "admin": "denied"}),
    "distill:index": ("post", {}, TRAINERS),
    "distill:run": ("get", {"run_id": "traces"}, SIGNED_IN),
    "distill:run-progress": ("get", {"run_id": "traces"}, SIGNED_IN),
    "distill:run-cancel": ("post", {"run_id": "traces"}, TRAINERS),
    "distill:run-resume": ("post", {"run_id": "traces"}, TRAINERS),
    "distill:trace": ("get", {"trace_id": "trace"}, SIGNED_IN),
    "distill:review": ("post", {"trace_id": "trace"}, REVIEWERS),
    "distill:export": ("get", {}, SIGNED_IN),
}
# GET pages whose POST is the row above: everyone signed in may look.
PAGES = {"training:runs", "evaluation:index", "studies:index", "distill:index", "puzzles:generate",
         "puzzles:guidelines"}


def route_names(patterns=None, namespace="") -> list[str]:
    names = []
    for entry in patterns if patterns is not None else get_resolver().url_patterns:
        if isinstance(entry, URLResolver):
            if entry.namespace == "admin":
                continue  # Django's admin: its own table below (test_every_admin_page_for_every_role)
            names += route_names(entry.url_patterns, namespace + (f"{entry.namespace}:" if entry.namespace else ""))
        elif isinstance(entry, URLPattern):
            names.append(namespace + (entry.name or str(entry.pattern).rstrip("/")))
    return names


def test_every_route_has_a_row():
    missing = sorted(set(route_names()) - set(MATRIX))
    assert not missing, f"routes without an entry in the permission matrix: {missing}"
    assert not set(MATRIX) - set(route_names()), "rows for routes that no longer exist"


@pytest.fixture
def world(db):
    """One of every object a route can name; the conversation, its message and the live dialog
    belong to `owner`, who is none of the roles."""
    from webapp.chat.models import Conversation, Message
    from webapp.distill.models import Trace, TraceRun
    from webapp.evaluation.models import BenchmarkRun, BenchmarkTask
    from webapp.puzzles.catalogue import import_seeds
    from webapp.puzzles.models import GenerationRun, Puzzle
    from webapp.serving import versions
    from webapp.studies.models import LiveDialog, Study, StudyTask
    from webapp.training.models import TrainingRun

    for name in ("reviewer", "trainer"):
        Group.objects.get_or_create(name=name)
    if not Puzzle.objects.exists():
        import_seeds()
    owner = User.objects.create_user("owner", password="x")
    conversation = Conversation.objects.create(owner=owner, title="mine", kind="task", problem="Add.",
                                               tests=["assert add(1, 2) == 3"], entry_point="add")
    message = Message.objects.create(conversation=conversation, owner=owner, role="assistant", content="hi",
                                     status="complete")
    done = {"status": "succeeded"}
    version = versions.active_version()
    study = Study.objects.create(**done)
    task = StudyTask.objects.create(study=study, task_id=11, text="t", tests=["assert f() == 1"],
                                    turn0={"reply": "r", "code": "", "tokens": 1, "status": "failed", "verdict": {}})
    dialog = LiveDialog.objects.create(study=study, task=task, participant=owner, conversation=conversation)
    benchmark = BenchmarkRun.objects.create(benchmark="mbpp", **done)
    BenchmarkTask.objects.create(run=benchmark, task_id="11", position=0, n=1, c=0, samples=[])
    traces = TraceRun.objects.create(**done)
    trace = Trace.objects.create(run=traces, task_id="601", source="mbpp:601", status="passed", kept=True,
                                 prompt=[{"role": "user", "content": "Write add."}], reasoning="Add the two.",
                                 code="def add(a, b):\n    return a + b")
    return {"conversation": conversation.pk, "message": message.pk, "puzzle": Puzzle.objects.first().pk,
            "generation": GenerationRun.objects.create(**done).pk, "round": TrainingRun.objects.create(
                status="succeeded", lock_slot=None).pk, "version": version.pk, "benchmark": benchmark.pk,
            "study": study.pk, "dialog": dialog.pk, "traces": traces.pk, "trace": trace.pk}


def people() -> dict[str, User | None]:
    made = {"anon": None}
    for role in ROLES[1:]:
        made[role] = User.objects.create_user(f"the-{role}", password="x", is_staff=role == "admin")
        if role in ("reviewer", "trainer"):
            made[role].groups.add(Group.objects.get(name=role))
    return made


def outcome(response) -> str:
    location = response.get("Location", "")
    if response.status_code in (301, 302) and ("/accounts/login/" in location or location.startswith("/admin/login/")):
        return "login"  # the site's sign-in page, or the admin's own
    return {403: "denied", 404: "hidden"}.get(response.status_code, "ok")


def test_every_route_for_every_role(world):
    from django.urls import reverse

    users = people()
    seen, wrong = [], []
    for name, (method, kwargs, expected, *form) in MATRIX.items():
        data = {key: world.get(value, value) for key, value in (form[0] if form else {}).items()}
        url = "/" + name if "." in name else reverse(name, kwargs={
            key: world.get(value, value) if isinstance(value, str) else value for key, value in kwargs.items()})
        checks = [(method, expected)]
        if name in PAGES:
            checks.append(("get", SIGNED_IN))
        for verb, wanted in checks:
            for role in ROLES:
                browser = Client()  # signed in afresh: a logout row must not sign out the next rows
                if users[role] is not None:
                    browser.force_login(users[role])
                with transaction.atomic():
                    response = getattr(browser, verb)(url, data if verb == "post" else None)
                    transaction.set_rollback(True)
                got = outcome(response)
                assert response.status_code != 500, f"{verb.upper()} {url} as {role}: a server error"
                seen.append((name, verb, role))
                if got != wanted[role]:
                    wrong.append(f"{verb.upper()} {url} as {role}: {got} ({response.status_code}), expected {wanted[role]}")
    assert not wrong, "\n".join(wrong)
    assert len(seen) == 5 * (len(MATRIX) + len(PAGES))


def admin_pages() -> list[tuple[str, str]]:
    """Every page Django's admin serves for the models registered here, as (kind, URL): the index,
    each app's list, and each model's list and add form and its first object's change, history and
    delete pages (the world fixture makes one of every object)."""
    from django.contrib import admin
    from django.urls import reverse

    pages = [("index", reverse("admin:index"))]
    for label in sorted({model._meta.app_label for model in admin.site._registry}):
        pages.append(("app", reverse("admin:app_list", args=[label])))
    for model in admin.site._registry:
        route = f"admin:{model._meta.app_label}_{model._meta.model_name}"
        pages += [("model", reverse(f"{route}_changelist")), ("model", reverse(f"{route}_add"))]
        first = model._default_manager.order_by("pk").first()
        if first is not None:
            pages += [("model", reverse(f"{route}_{page}", args=[first.pk])) for page in ("change", "history", "delete")]
    return pages


# Django's admin, by kind of page: whoever is not staff is sent to sign in (the site's page or the
# admin's own); staff without model permissions see the index and nothing else (an app they may not
# see is a 404, a model page a 403); a superuser (the account `up` creates) sees every page.
NOT_STAFF = {"anon": "login", "user": "login", "reviewer": "login", "trainer": "login"}
ADMIN_PAGES = {
    "index": {**NOT_STAFF, "admin": "ok", "superuser": "ok"},
    "app": {**NOT_STAFF, "admin": "hidden", "superuser": "ok"},
    "model": {**NOT_STAFF, "admin": "denied", "superuser": "ok"},
}


def test_every_admin_page_for_every_role(world):
    from django.contrib import admin

    users = {**people(), "superuser": User.objects.create_superuser("the-superuser", password="x")}
    pages = admin_pages()
    assert len(admin.site._registry) >= 15 and sum(kind == "model" for kind, _ in pages) >= 4 * len(admin.site._registry)
    wrong = []
    for kind, url in pages:
        for role, user in users.items():
            browser = Client()
            if user is not None:
                browser.force_login(user)
            response = browser.get(url)
            assert response.status_code != 500, f"GET {url} as {role}: a server error"
            got = outcome(response)
            if got != ADMIN_PAGES[kind][role]:
                wrong.append(f"GET {url} as {role}: {got} ({response.status_code}), expected {ADMIN_PAGES[kind][role]}")
    assert not wrong, "\n".join(wrong)


def test_what_users_write_is_escaped_in_the_admin(world):
    """The admin shows conversations verbatim: markup a user or the model wrote is text there."""
    from django.urls import reverse

    from webapp.chat.models import Message

    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    message = Message.objects.get(pk=world["message"])
    message.content = hostile
    message.save(update_fields=["content"])
    browser = Client()
    browser.force_login(User.objects.create_superuser("the-superuser", password="x"))
    for name, args in (("admin:chat_message_changelist", []), ("admin:chat_message_change", [message.pk]),
                       ("admin:chat_conversation_change", [world["conversation"]])):
        body = browser.get(reverse(name, args=args)).content.decode()
        assert "<script>alert" not in body and "<img src=x" not in body, name
    assert "&lt;script&gt;alert" in body


def test_the_owner_reaches_their_own_conversation(world):
    from django.urls import reverse

    owner = Client()
    owner.force_login(User.objects.get(username="owner"))
    for name in ("chat:conversation", "chat:body"):
        assert owner.get(reverse(name, kwargs={"conversation_id": world["conversation"]})).status_code == 200


# websocket path -> expected close code per role (None: accepted and kept open); another user's conversation
SOCKETS = {
    "ws/events/": {"anon": 4401, "user": None, "reviewer": None, "trainer": None, "admin": None},
    "ws/chat/<int:conversation_id>/": {"anon": 4401, "user": 4404, "reviewer": 4404, "trainer": 4404, "admin": 4404,
                                       "owner": None},
}


def test_every_websocket_route_has_a_row():
    from webapp.routing import websocket_urlpatterns

    assert sorted(str(p.pattern) for p in websocket_urlpatterns) == sorted(SOCKETS)


@pytest.mark.django_db(transaction=True)
def test_every_websocket_route_for_every_role():
    from asgiref.sync import async_to_sync
    from channels.testing import WebsocketCommunicator

    from webapp.asgi import application
    from webapp.chat.models import Conversation

    for name in ("reviewer", "trainer"):
        Group.objects.get_or_create(name=name)
    users = {**people(), "owner": User.objects.create_user("owner", password="x")}
    conversation = Conversation.objects.create(owner=users["owner"], title="mine")

    def cookie(user) -> list:
        if user is None:
            return []
        client = Client()
        client.force_login(user)
        return [(b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())]

    async def close_code(path: str, headers: list):
        comm = WebsocketCommunicator(application, path, headers=[(b"origin", b"http://localhost"), *headers])
        connected, _ = await comm.connect()
        if not connected:
            return "rejected"
        if await comm.receive_nothing(timeout=1):  # nothing within a second: the socket stays open
            await comm.disconnect()
            return None
        output = await comm.receive_output(timeout=1)
        await comm.disconnect()
        return output["code"] if output.get("type") == "websocket.close" else None  # a send: it is open

    wrong = []
    for pattern, expected in SOCKETS.items():
        path = "/" + pattern.replace("<int:conversation_id>", str(conversation.pk))
        for role, code in expected.items():
            got = async_to_sync(close_code)(path, cookie(users[role]))
            if got != code:
                wrong.append(f"{path} as {role}: {got}, expected {code}")
    assert not wrong, "\n".join(wrong)
