"""Chat pages. Actions answer with the re-rendered conversation body (htmx swaps it in); live
tokens and test results arrive over the conversation's websocket."""
from __future__ import annotations

from django.contrib import messages
from django.db.models import Q
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from engine.codechat.checks import split_tests
from webapp.chat import model_replies, threads, user_turns
from webapp.chat.export import exportable, iter_jsonl
from webapp.chat.models import Conversation, Message
from webapp.chat.rendering import code_diff, render_markdown
from webapp.chat.testing import schedule_tests
from webapp.core.refusal_responses import refusal_response
from webapp.refusals import Invalid, Refused
from webapp.serving import chat_models

SIDEBAR_SIZE = 50


def _refusal(request, exc: Refused) -> HttpResponse:
    """A request the chat cannot take: htmx gets the reason as text (the page shows it, nothing lost); a
    plain form post goes back to the page it came from, the reason shown there."""

    def back_to_the_page(text: str, status: int) -> HttpResponse:
        messages.error(request, text)
        back = request.headers.get("Referer", "")
        safe = url_has_allowed_host_and_scheme(back, {request.get_host()}, request.is_secure())
        return redirect(back if safe else reverse("chat:index"))

    return refusal_response(request, exc, back_to_the_page, ("chat:index", "Back to the chat"))


def _sidebar(request, current: Conversation | None = None) -> dict:
    query = request.GET.get("q", "").strip()[:200]
    conversations = Conversation.objects.filter(owner=request.user)
    if query:
        conversations = conversations.filter(Q(title__icontains=query) | Q(messages__content__icontains=query)
                                             | Q(problem__icontains=query)).distinct()
    return {"conversations": conversations[:SIDEBAR_SIZE], "query": query, "current": current}


def _own_conversation(request, conversation_id: int) -> Conversation:
    return get_object_or_404(Conversation, pk=conversation_id, owner=request.user)


def _own_message(request, message_id: int) -> Message:
    return get_object_or_404(Message.objects.select_related("conversation"), pk=message_id, owner=request.user)


def thread_items(conversation: Conversation) -> list[dict]:
    """The branch on screen, each message with what its template needs."""
    messages = threads.thread(conversation)
    alternatives: dict[tuple, list[int]] = {}
    for pk, parent_id, role in conversation.messages.values_list("pk", "parent_id", "role").order_by("created_at", "id"):
        alternatives.setdefault((parent_id, role), []).append(pk)
    items, previous_code = [], None
    for message in messages:
        siblings = alternatives.get((message.parent_id, message.role), [message.pk])
        index = siblings.index(message.pk) if message.pk in siblings else 0
        item = {"message": message, "sibling_index": index + 1, "sibling_count": len(siblings),
                "previous_sibling": siblings[index - 1] if index > 0 else None,
                "next_sibling": siblings[index + 1] if index + 1 < len(siblings) else None}
        if message.role == Message.Role.ASSISTANT and message.status != Message.Status.STREAMING:
            item["html"] = render_markdown(message.content)
            if message.kind == Message.Kind.REPAIR and previous_code is not None and message.code:
                item["diff"] = code_diff(previous_code, message.code)
                item["unchanged"] = not item["diff"]
            if message.code:
                previous_code = message.code
        elif message.role == Message.Role.USER:
            item["html"] = render_markdown(message.content)
        items.append(item)
    return items


def _body_context(conversation: Conversation) -> dict:
    items = thread_items(conversation)
    last = items[-1]["message"] if items else None
    answer = user_turns.latest_answer([item["message"] for item in items])
    given = sum(1 for item in items if item["message"].kind == Message.Kind.FEEDBACK)
    feedback_left = max(conversation.max_feedback_turns - given, 0) if conversation.max_feedback_turns else None
    return {
        "conversation": conversation,
        "tests_text": "\n".join(conversation.tests),
        "items": items,
        "streaming": bool(last and last.status == Message.Status.STREAMING),
        "can_give_feedback": conversation.has_tests and answer is not None and last.pk == answer.pk
        and feedback_left != 0,
        "feedback_left": feedback_left,  # a study dialog's turns left (None: no limit)
        "tests_running": bool(answer and answer.verdict and answer.verdict.get("status") == "running"),
    }


def _body(request, conversation: Conversation) -> HttpResponse:
    """After an action: the fresh body for htmx, or the whole page for a plain form post."""
    if not request.htmx and request.method == "POST":
        return redirect("chat:conversation", conversation.pk)
    conversation.refresh_from_db()
    return render(request, "chat/_body.html", _body_context(conversation))


def _start_turn(request, conversation: Conversation, start) -> HttpResponse:
    """Run a turn-starting action: the fresh body, or the reason it was refused (nothing saved)."""
    try:
        start()
    except Refused as exc:
        return _refusal(request, exc)
    return _body(request, conversation)


def _new_form(request, form: dict, **extra) -> dict:
    return {**_sidebar(request), "kinds": Conversation.Kind, "form": form, "chat_models": chat_models.available(),
            **extra}


@require_GET
def index(request):
    form = {"kind": request.GET.get("kind", "free"), "chat_model": chat_models.default_value()}
    return render(request, "chat/index.html", _new_form(request, form))


@require_POST
def new(request):
    kind = request.POST.get("kind", Conversation.Kind.FREE)
    form = {key: request.POST.get(key, "") for key in ("kind", "text", "problem", "tests", "sat", "title", "mbpp_id")}
    form["chat_model"] = request.POST.get("chat_model", chat_models.default_value())
    try:
        if kind not in Conversation.Kind.values:
            raise Invalid(f"unknown conversation kind {kind!r}: choose one of {', '.join(Conversation.Kind.values)}")
        conversation, _ = user_turns.open_conversation(
            request.user, kind, text=form["text"], problem=form["problem"], tests=split_tests(form["tests"]),
            sat=form["sat"], title=form["title"], mbpp_id=form["mbpp_id"], chat_model=form["chat_model"])
    except Refused as exc:  # the form again, with what was typed
        return render(request, "chat/index.html", _new_form(request, form, error=exc.reason), status=exc.status)
    return redirect("chat:conversation", conversation.pk)


@require_GET
def conversation_page(request, conversation_id: int):
    conversation = _own_conversation(request, conversation_id)
    models = chat_models.available()
    current = next((m for m in models if m.value == conversation.chat_model), None)
    return render(request, "chat/conversation.html", {**_sidebar(request, conversation), **_body_context(conversation),
                                                      "chat_models": models, "chat_model": current})


@require_GET
@never_cache
def body(request, conversation_id: int):
    return _body(request, _own_conversation(request, conversation_id))


@require_POST
def send(request, conversation_id: int):
    conversation = _own_conversation(request, conversation_id)
    return _start_turn(request, conversation, lambda: user_turns.send(conversation, request.POST.get("text", "")))


@require_POST
def feedback(request, conversation_id: int):
    conversation = _own_conversation(request, conversation_id)
    text = request.POST.get("feedback", "")
    return _start_turn(request, conversation, lambda: user_turns.give_feedback(conversation, text))


@require_POST
def rename(request, conversation_id: int):
    conversation = _own_conversation(request, conversation_id)
    title = request.POST.get("title", "").strip()[:200]
    if not title:
        return _refusal(request, Invalid("the title is empty"))
    Conversation.objects.filter(pk=conversation.pk).update(title=title, updated_at=timezone.now())
    if request.htmx:
        return HttpResponse(status=204, headers={"HX-Refresh": "true"})
    return redirect("chat:conversation", conversation.pk)


@require_POST
def change_model(request, conversation_id: int):
    """The model for this conversation's next replies (earlier replies keep the name of theirs)."""
    conversation = _own_conversation(request, conversation_id)
    try:
        if conversation.max_feedback_turns:
            raise Invalid("a study dialog keeps the model under study")
        chosen = chat_models.resolve(request.POST.get("chat_model", ""))
    except Refused as exc:
        return _refusal(request, exc)
    Conversation.objects.filter(pk=conversation.pk).update(chat_model=chosen.value, updated_at=timezone.now())
    messages.success(request, f"Next replies come from {chosen.label}.")
    return redirect("chat:conversation", conversation.pk)


@require_POST
def delete(request, conversation_id: int):
    conversation = _own_conversation(request, conversation_id)
    for message_id in conversation.messages.filter(status=Message.Status.STREAMING).values_list("pk", flat=True):
        model_replies.request_stop(message_id)
    conversation.delete()
    if request.htmx:
        return HttpResponse(status=204, headers={"HX-Redirect": reverse("chat:index")})
    return redirect("chat:index")


@require_POST
def stop(request, message_id: int):
    message = _own_message(request, message_id)
    model_replies.request_stop(message.pk)
    return HttpResponse(status=204)


@require_POST
def regenerate(request, message_id: int):
    message = _own_message(request, message_id)
    return _start_turn(request, message.conversation, lambda: user_turns.regenerate(message))


@require_POST
def edit(request, message_id: int):
    message = _own_message(request, message_id)
    return _start_turn(request, message.conversation, lambda: user_turns.edit(message, request.POST.get("text", "")))


@require_POST
def show_branch(request, message_id: int):
    message = _own_message(request, message_id)
    threads.switch_to(message)
    return _body(request, message.conversation)


@require_POST
def run_tests(request, message_id: int):
    message = _own_message(request, message_id)
    if not message.conversation.has_tests:
        return _refusal(request, Invalid("this conversation has no tests"))
    if message.role != Message.Role.ASSISTANT or message.status == Message.Status.STREAMING:
        return _refusal(request, Invalid("only a finished answer can be tested"))
    if not message.code:
        return _refusal(request, Invalid("the answer has no code block to test"))
    schedule_tests(message.pk)
    return _body(request, message.conversation)


@require_POST
def rate(request, message_id: int):
    message = _own_message(request, message_id)
    if message.role != Message.Role.ASSISTANT:
        return _refusal(request, Invalid("only answers can be rated"))
    value = {"up": 1, "down": -1}.get(request.POST.get("value", ""))
    reason = request.POST.get("reason", "").strip()[:500]
    if value is None:
        Message.objects.filter(pk=message.pk).update(rating=None, rating_reason="")
    else:
        Message.objects.filter(pk=message.pk).update(rating=value, rating_reason=reason)
    message.refresh_from_db()
    return render(request, "chat/_rating.html", {"message": message})


@require_GET
def export(request):
    """Your conversations as JSON lines (staff: everyone's with ?all=1)."""
    owner = None if (request.user.is_staff and request.GET.get("all") == "1") else request.user
    lines = iter_jsonl(exportable(owner, request.GET.get("feedback") == "1").iterator(chunk_size=200))
    response = StreamingHttpResponse(lines, content_type="application/x-ndjson")
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="autodidact-chats-{stamp}.jsonl"'
    return response
