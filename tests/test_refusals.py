"""One refusal type: services raise `Refused` (with its HTTP status), views turn only that into a page
or an htmx text, and anything else is a logged 500 whose text never reaches the person."""
import pytest
from django.contrib.auth.models import User
from django.test import Client

from engine.config import ConfigError
from engine.selfplay.pipeline import SelfPlayConfig
from tests.support import signed_in_client, user_with_roles
from webapp.chat import model_replies
from webapp.chat.models import Conversation, Message
from webapp.puzzles import generation_runs
from webapp.refusals import Conflict, Invalid, NotAllowed, RateLimited, Refused, Unavailable

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


def test_each_refusal_has_its_status():
    assert [cls("x").status for cls in (Invalid, NotAllowed, Conflict, Unavailable)] == [400, 403, 409, 503]
    assert RateLimited("x", 7).status == 429 and RateLimited("x", 7).retry_after_s == 7
    assert issubclass(model_replies.Busy, Conflict) and issubclass(generation_runs.RunRefused, Refused)
    assert Invalid("the message is empty").reason == "The message is empty"


def test_config_errors_name_their_fields():
    with pytest.raises(ConfigError) as caught:
        SelfPlayConfig.from_dict({"batches": 0, "solving_temperature": 7.0, "style": "poetry"})
    assert set(caught.value.errors) == {"batches", "solving_temperature", "style"}
    with pytest.raises(ConfigError, match="unknown self-play settings: colour"):
        SelfPlayConfig.from_dict({"colour": "red"})
    assert SelfPlayConfig.from_known({"colour": "red", "batches": 2}).batches == 2


def test_an_internal_error_is_a_500_that_says_nothing_of_it(monkeypatch):
    trainer = user_with_roles("tom", "trainer")
    client = Client(raise_request_exception=False)
    client.force_login(trainer)

    def broken(user, settings_):
        raise ValueError("internal detail: /srv/secret/path")

    monkeypatch.setattr(generation_runs, "start_run", broken)
    form = {**SelfPlayConfig().as_dict()}
    for headers in ({}, HTMX):
        response = client.post("/puzzles/generate/", form, **headers)
        assert response.status_code == 500 and "internal detail" not in response.content.decode()


def test_a_refusal_no_view_catches_still_reaches_the_person(monkeypatch):
    ada = User.objects.create_user("ada")
    conversation = Conversation.objects.create(owner=ada)
    message = Message.objects.create(conversation=conversation, owner=ada, role="user", content="hi")

    def refuse(message):
        raise Conflict("the branch is being rewritten; try again")

    monkeypatch.setattr("webapp.chat.threads.switch_to", refuse)
    client = signed_in_client(ada)
    response = client.post(f"/chat/messages/{message.pk}/show/", **HTMX)
    assert response.status_code == 409 and response.content.decode() == "The branch is being rewritten; try again"
    response = client.post(f"/chat/messages/{message.pk}/show/")
    assert response.status_code == 409 and "The branch is being rewritten; try again" in response.content.decode()


def test_refused_is_the_only_exception_views_catch():
    """No view module catches a bare ValueError or PermissionDenied to turn it into a page."""
    import ast
    from pathlib import Path

    from tests.support import ROOT

    offences = []
    view_modules = [p for p in (ROOT / "webapp").rglob("*views.py") if p.name == "views.py" or p.name.endswith("_views.py")]
    assert any(p.name == "review_views.py" for p in view_modules)  # (reviews.py is a service, not views)
    for path in sorted(view_modules):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ExceptHandler) and node.type is not None:
                names = [n.id if isinstance(n, ast.Name) else getattr(n, "attr", "") for n in
                         (node.type.elts if isinstance(node.type, ast.Tuple) else [node.type])]
                if {"ValueError", "PermissionDenied"} & set(names):
                    offences.append(f"{Path(path).relative_to(ROOT)}:{node.lineno} catches {names}")
    assert offences == [] and Refused
