"""The person's side of a chat turn: what a person can do that makes the model answer: open a conversation (free text, a task with
tests, a puzzle), send a message, edit one, regenerate a reply, or give feedback for a repair.

Each checks the model worker and the user's rate limit first, so a refused request loses nothing
(the page keeps the text), and each queues the reply on the model worker once saved.
"""
from __future__ import annotations

import ast

from django.db import IntegrityError, transaction

from engine.codechat import prompts
from engine.codechat.checks import entry_point_of, validate_tests
from engine.sandbox.analysis import PuzzleFormError, analyse_puzzle
from engine.sandbox.verdict import short
from webapp.chat import rate_limits
from webapp.chat.model_replies import Busy, broadcast, create_reply
from webapp.chat.models import Conversation, Message
from webapp.chat.threads import thread
from webapp.datasets.held_out import held_out
from webapp.datasets.models import trainable_source
from webapp.refusals import Invalid, Unavailable
from webapp.serving import chat_models, model_worker

MAX_TESTS = 50
MAX_MESSAGE_CHARS = 20_000


def _clean_text(text: str) -> str:
    text = (text or "").strip()
    if not text:
        raise Invalid("the message is empty")
    if len(text) > MAX_MESSAGE_CHARS:
        raise Invalid(f"the message is longer than {MAX_MESSAGE_CHARS:,} characters")
    return text


def start_turn(conversation: Conversation, text: str, *, kind: str = Message.Kind.CHAT, prompt: str = "",
               parent: Message | None | bool = True, reply_kind: str = Message.Kind.CHAT) -> tuple[Message, Message]:
    """Save the user's message and a placeholder for the reply. Raises Busy or Invalid.

    `parent=True` continues the branch on screen; None starts at the root (an edited first message)."""
    text = _clean_text(text)
    if parent is True:  # the leaf as stored now (a long-lived socket's copy of the conversation is stale)
        leaf_id = Conversation.objects.filter(pk=conversation.pk).values_list("leaf_id", flat=True).first()
        parent = Message.objects.filter(pk=leaf_id).first() if leaf_id else (
            conversation.messages.order_by("-created_at", "-id").first())
    try:
        with transaction.atomic():
            asked = Message.objects.create(conversation=conversation, owner=conversation.owner, parent=parent,
                                           role=Message.Role.USER, kind=kind, content=text, prompt=prompt)
            reply = create_reply(conversation, asked, reply_kind)
    except IntegrityError:
        raise Busy("a reply is still being written; stop it or wait for it") from None
    if not conversation.title:
        Conversation.objects.filter(pk=conversation.pk).update(title=short(text.splitlines()[0], 80))
    conversation.leaf = reply
    return asked, reply


def check_can_reply(user) -> dict:
    """Raise Unavailable or RateLimited before anything is saved; returns the state of the worker
    the reply will go to (`reply_queue`: the chat worker's queue, or `gpu` where none serves)."""
    queue, state = model_worker.chat_queue()
    state = {**state, "reply_queue": queue}
    if not state["alive"]:
        raise Unavailable("the model worker is not running, so nothing was sent; "
                          "an admin can check it on the health page (/healthz)")
    runtime = state.get("runtime") or {}
    if runtime.get("status") == "failed":
        raise Unavailable(f"the model could not be loaded: {runtime.get('error', 'unknown error')}")
    rate_limits.consume(user.pk)
    return state


def _waiting_note(state: dict, reply: Message) -> str:
    """Why the reply has not started yet, for the placeholder."""
    ahead = Message.objects.filter(status=Message.Status.STREAMING, heartbeat_at__isnull=True,
                                   pk__lt=reply.pk).count()
    if state.get("state") == "busy":
        ahead += 1
    if (state.get("runtime") or {}).get("status") in ("loading", "not loaded", None):
        return "The model is loading (about 20 s the first time)…"
    return f"Waiting for the model ({ahead} request{'s' if ahead != 1 else ''} ahead)…" if ahead else ""


def _queue(conversation: Conversation, state: dict, *messages: Message) -> None:
    from webapp.chat.tasks import chat_reply

    reply = messages[-1]
    for message in messages:
        event = message.as_event()
        if message is reply:
            event["note"] = _waiting_note(state, reply)
        broadcast(conversation.pk, {"kind": "message", "message": event})
    broadcast(conversation.pk, {"kind": "thread", "leaf": reply.pk})
    transaction.on_commit(lambda: chat_reply.apply_async((reply.pk,), queue=state["reply_queue"]))


def mbpp_task(task_id: str) -> dict:
    """An MBPP task as conversation fields. Test-split tasks are refused: a solved repair becomes
    training data, and the test split is kept for evaluation."""
    from django.conf import settings

    from engine.datasets.mbpp import load_mbpp

    if not str(task_id).strip().isdigit():
        raise Invalid("an MBPP task id is a number, e.g. 601")
    try:
        task = load_mbpp(settings.AUTODIDACT_BENCHMARK_DATA).get(int(task_id))
    except FileNotFoundError as exc:
        raise Invalid(str(exc)) from None
    if task is None:
        raise Invalid(f"there is no MBPP task {task_id}")
    if not task.usable_for_training:
        raise Invalid(f"MBPP task {task_id} is in the {task.split} split (test 11-510, validation 511-600), which "
                         "is kept for evaluation; choose a train (601-974) or prompt (1-10) task")
    return {"problem": task.text, "tests": task.tests, "setup": task.setup, "source": f"mbpp:{task.task_id}"}


def task_fields(kind: str, *, problem: str = "", tests: list[str] = (), sat: str = "") -> dict:
    """Validated fields of a conversation's task; raises Invalid with every problem found."""
    if kind == Conversation.Kind.TASK:
        problems = [] if problem.strip() else ["describe the task in words"]
        problems += validate_tests(list(tests))
        if len(tests) > MAX_TESTS:
            problems.append(f"at most {MAX_TESTS} tests")
        if problems:
            raise Invalid("; ".join(problems))
        return {"problem": problem.strip(), "tests": list(tests), "entry_point": entry_point_of(list(tests))}
    if kind == Conversation.Kind.PUZZLE:
        try:
            analyse_puzzle(sat, "def sol():\n    return None\n")
        except SyntaxError as exc:
            raise Invalid(f"the puzzle is not valid Python: {exc.msg} (line {exc.lineno})") from None
        except PuzzleFormError as exc:
            raise Invalid(f"not a P3 puzzle: {exc}") from None
        return {"sat": sat.strip() + "\n", "entry_point": "sol"}
    return {}


def default_title(kind: str, fields: dict) -> str:
    """A task chat is named after its task, a puzzle chat after its puzzle (its docstring's first
    line, else its signature), so a list of them is not a list of one title."""
    if kind == Conversation.Kind.TASK:
        return short(fields["problem"].splitlines()[0], 80)
    if kind == Conversation.Kind.PUZZLE:
        try:
            function = next(n for n in ast.parse(fields["sat"]).body if isinstance(n, ast.FunctionDef))
        except (SyntaxError, ValueError, RecursionError, MemoryError, StopIteration):
            return "Puzzle"
        doc = (ast.get_docstring(function) or "").strip().splitlines()
        if doc:
            return short(f"Puzzle: {doc[0]}", 80)
        return short(f"Puzzle {function.name}({ast.unparse(function.args)})", 80)
    return ""


def held_out_source(kind: str, source: str, fields: dict, text: str = "") -> str:
    """The conversation's source, or the test item its pasted text is (engine/datasets/held_out.py):
    its repairs are then never trained on, whatever the snapshot's own check finds. A pasted P3
    test or validation puzzle is refused, as the puzzle page refuses one."""
    matched = held_out().match("\n\n".join([text, fields.get("problem", ""), fields.get("sat", ""),
                                             *fields.get("tests", [])]))
    if matched is None:
        return source
    if kind == Conversation.Kind.PUZZLE and matched.startswith("p3-"):
        raise Invalid(f"this is a held-out puzzle ({matched.split(':', 1)[1]}, P3 {matched[3:].split(':')[0]} "
                      "split): it cannot be discussed with the model, because a repair the sandbox verifies in "
                      "the chat becomes training data, and those puzzles are kept for evaluation only")
    return matched if trainable_source(source) else source


def open_conversation(user, kind: str, *, text: str = "", problem: str = "", tests: list[str] = (),
                      sat: str = "", title: str = "", source: str = "user",
                      mbpp_id: str = "", chat_model: str | None = None) -> tuple[Conversation, Message]:
    """A new conversation and its first reply, queued. Raises Invalid, Busy, Unavailable or RateLimited.
    `chat_model`: a value from webapp.serving.chat_models (None: the default)."""
    chat_model = chat_models.resolve(chat_models.default_value() if chat_model is None else chat_model).value
    setup = ""
    if kind == Conversation.Kind.TASK and str(mbpp_id).strip():
        loaded = mbpp_task(mbpp_id)
        problem, tests, setup, source = loaded["problem"], loaded["tests"], loaded["setup"], loaded["source"]
    fields = task_fields(kind, problem=problem, tests=tests, sat=sat)
    source = held_out_source(kind, source, fields, text)
    if setup:
        fields["setup"] = setup
    if kind == Conversation.Kind.FREE and not text.strip():
        raise Invalid("the message is empty")
    state = check_can_reply(user)
    with transaction.atomic():
        conversation = Conversation.objects.create(owner=user, kind=kind, source=source, chat_model=chat_model, **fields,
                                                   title=title.strip()[:200] or default_title(kind, fields))
        if kind == Conversation.Kind.TASK:
            shown = prompts.task_message(fields["problem"], fields["tests"])
            asked, reply = start_turn(conversation, shown, kind=Message.Kind.TASK, parent=None,
                                      prompt=prompts.task_prompt(fields["problem"], fields["tests"]))
        elif kind == Conversation.Kind.PUZZLE:
            asked, reply = start_turn(conversation, prompts.puzzle_message(fields["sat"]), kind=Message.Kind.TASK,
                                      parent=None, prompt=prompts.puzzle_prompt(fields["sat"]))
        else:
            asked, reply = start_turn(conversation, text, parent=None)
        _queue(conversation, state, asked, reply)
    return conversation, reply


def send(conversation: Conversation, text: str) -> tuple[Message, Message]:
    """A chat message at the end of the branch on screen."""
    _feedback_only(conversation)
    if not (text or "").strip():
        raise Invalid("the message is empty")
    state = check_can_reply(conversation.owner)
    with transaction.atomic():
        asked, reply = start_turn(conversation, text)
        _queue(conversation, state, asked, reply)
    return asked, reply


def latest_answer(messages: list[Message]) -> Message | None:
    """The last finished assistant message of a branch (root first)."""
    for message in reversed(messages):
        if message.role == Message.Role.ASSISTANT and message.status != Message.Status.STREAMING:
            return message
    return None


def _feedback_only(conversation: Conversation) -> None:
    """A study dialog counts feedback turns: a free message or a redrawn answer would not be one."""
    if conversation.max_feedback_turns:
        raise Invalid("a study dialog takes feedback turns only (no other messages, no regenerated answers)")


def give_feedback(conversation: Conversation, feedback: str) -> tuple[Message, Message]:
    """A repair turn: the model gets the task and its previous code (the history), the sandbox's
    results on that code and the feedback, and answers with new code (tested when it finishes)."""
    if not conversation.has_tests:
        raise Invalid("feedback turns need a task with tests or a puzzle")
    branch = thread(conversation)
    previous = latest_answer(branch)
    if previous is None:
        raise Invalid("there is no answer to give feedback on yet")
    if previous.verdict and previous.verdict.get("status") == "running":
        raise Busy("the tests of the last answer are still running")
    if not (feedback or "").strip():
        raise Invalid("the feedback is empty")
    given = sum(1 for message in branch if message.kind == Message.Kind.FEEDBACK)
    if conversation.max_feedback_turns and given >= conversation.max_feedback_turns:
        raise Invalid(f"this dialog allows {conversation.max_feedback_turns} feedback turns, and all were given")
    state = check_can_reply(conversation.owner)
    with transaction.atomic():
        asked, reply = start_turn(conversation, feedback, kind=Message.Kind.FEEDBACK, parent=previous,
                                  reply_kind=Message.Kind.REPAIR,
                                  prompt=prompts.repair_prompt(feedback, previous.verdict, conversation.entry_point))
        _queue(conversation, state, asked, reply)
    return asked, reply


def edit(message: Message, text: str) -> tuple[Message, Message]:
    """A new version of a user message, beside the old one (its branch is kept), and a new reply."""
    if message.role != Message.Role.USER:
        raise Invalid("only your own messages can be edited")
    conversation = message.conversation
    if not (text or "").strip():
        raise Invalid("the message is empty")
    prompt = ""
    if message.kind == Message.Kind.FEEDBACK:
        previous = Message.objects.get(pk=message.parent_id)
        prompt = prompts.repair_prompt(text, previous.verdict, conversation.entry_point)
    elif message.kind == Message.Kind.TASK:
        raise Invalid("the task itself cannot be edited; start a new conversation with the changed task")
    state = check_can_reply(conversation.owner)
    reply_kind = Message.Kind.REPAIR if message.kind == Message.Kind.FEEDBACK else Message.Kind.CHAT
    with transaction.atomic():
        asked, reply = start_turn(conversation, text, kind=message.kind, prompt=prompt,
                                  parent=message.parent, reply_kind=reply_kind)
        _queue(conversation, state, asked, reply)
    return asked, reply


def regenerate(message: Message) -> Message:
    """Another answer to the same message, beside the old one."""
    if message.role != Message.Role.ASSISTANT or message.parent_id is None:
        raise Invalid("only answers can be regenerated")
    if message.status == Message.Status.STREAMING:
        raise Busy("this answer is still being written")
    _feedback_only(message.conversation)
    state = check_can_reply(message.conversation.owner)
    with transaction.atomic():
        reply = create_reply(message.conversation, message.parent, message.kind)
        _queue(message.conversation, state, reply)
    return reply
