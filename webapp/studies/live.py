"""The live study: a reviewer takes the next task the model failed in a study's replay, and gives
feedback in the chat for up to the study's number of turns. Each dialog is a chat conversation
that starts from the replay's own first attempt (the same failed code, already tested), so people
and the simulated kinds repair the same answers; the chat's measures (turns, first success) are
the dialog's result. The task's source stays `mbpp:<id>`, so no repair of a test task is trained on.
"""
from __future__ import annotations

from django.db import transaction
from django.db.models import Count

from engine.codechat import prompts
from engine.codechat.checks import entry_point_of
from engine.codechat.dialog_study import live_summary
from webapp.accounts.roles import is_reviewer, is_trainer
from webapp.chat.models import Conversation, Message
from webapp.refusals import Conflict, NotAllowed
from webapp.studies.models import LiveDialog, Study, StudyTask


def may_take_part(user) -> bool:
    return is_reviewer(user) or is_trainer(user)


def dialog_done(dialog: LiveDialog, turns: int) -> bool:
    """Solved, out of feedback turns, or left by the person."""
    conversation = dialog.conversation
    return dialog.finished or conversation.solved or conversation.turns >= turns + 1


def open_dialog(user, study: Study) -> LiveDialog | None:
    """The person's dialog in this study that still has turns left, if any."""
    for dialog in study.live_dialogs.filter(participant=user, finished=False).select_related("conversation"):
        if not dialog_done(dialog, study.turns):
            return dialog
    return None


def take_task(user, study: Study) -> LiveDialog:
    """The person's open dialog, else a new one on the failed task fewest people have had yet.
    Raises NotAllowed, or Conflict when the study has no replay yet or the person has done them all."""
    if not may_take_part(user):
        raise NotAllowed("only reviewers and trainers take part in studies")
    if study.status != Study.Status.SUCCEEDED:
        raise Conflict("the study's replay has not finished: the tasks the model fails are not known yet")
    current = open_dialog(user, study)
    if current is not None:
        return current
    done = study.live_dialogs.filter(participant=user).values_list("task_id", flat=True)
    task = (study.task_rows.filter(task_id__in=study.failed_ids).exclude(pk__in=done)
            .annotate(people=Count("live_dialogs")).order_by("people", "position").first())
    if task is None:
        raise Conflict("you have given feedback on every task of this study; thank you")
    with transaction.atomic():
        return LiveDialog.objects.create(study=study, task=task, participant=user,
                                         conversation=_conversation(user, study, task))


def _conversation(user, study: Study, task: StudyTask) -> Conversation:
    """A task chat holding the replay's first attempt as the model's first answer, tested."""
    turn0 = task.turn0
    conversation = Conversation.objects.create(
        owner=user, kind=Conversation.Kind.TASK, problem=task.text, tests=task.tests, setup=task.setup,
        entry_point=entry_point_of(task.tests) or "", source=f"mbpp:{task.task_id}", chat_model=study.chat_model,
        title=f"Study {study.pk} · MBPP {task.task_id}", max_feedback_turns=study.turns, turns=1)
    asked = Message.objects.create(conversation=conversation, owner=user, role=Message.Role.USER,
                                   kind=Message.Kind.TASK, content=prompts.task_message(task.text, task.tests),
                                   prompt=prompts.task_prompt(task.text, task.tests))
    version_id = int(study.chat_model.split(":")[1]) if study.chat_model.startswith("version:") else None
    reply = Message.objects.create(
        conversation=conversation, owner=user, parent=asked, role=Message.Role.ASSISTANT, kind=Message.Kind.CHAT,
        content=turn0.get("reply", ""), status=Message.Status.COMPLETE, finish_reason="stop", turn=1,
        code=turn0.get("code", ""), verdict=turn0.get("verdict"), model_version_id=version_id,
        model_name=f"{(study.model_info or {}).get('name', '')} (study {study.pk}, first attempt)".strip())
    Conversation.objects.filter(pk=conversation.pk).update(leaf=reply)
    conversation.leaf = reply
    return conversation


def leave_dialog(user, dialog: LiveDialog) -> None:
    """The person is done with this task (solved or not): it counts with the turns it has."""
    if dialog.participant_id != user.pk:
        raise NotAllowed("this is someone else's dialog")
    LiveDialog.objects.filter(pk=dialog.pk).update(finished=True)


def study_turn(conversation: Conversation) -> int:
    """Feedback turns given so far (the chat counts the first answer as turn 1)."""
    return max(conversation.turns - 1, 0)


def live_rows(study: Study) -> list[dict]:
    """Every dialog: task, person, feedback turns, the study turn of first success, done or not."""
    rows = []
    for dialog in study.live_dialogs.select_related("conversation", "participant", "task"):
        conversation = dialog.conversation
        first = conversation.first_success_turn
        rows.append({"dialog": dialog.pk, "task_id": dialog.task.task_id, "participant": dialog.participant.username,
                     "conversation": conversation.pk, "turns": study_turn(conversation),
                     "first_success_turn": first - 1 if first and first - 1 <= study.turns else None,
                     "done": dialog_done(dialog, study.turns)})
    return rows


def live_result(study: Study, rows: list[dict] | None = None) -> dict | None:
    """The people's per-turn curve over finished dialogs (None until one has finished)."""
    rows = live_rows(study) if rows is None else rows
    finished = {str(row["dialog"]): row["first_success_turn"] for row in rows if row["done"]}
    summary = study.summary or {}
    if not finished or not summary.get("tasks"):
        return None
    return live_summary(summary["tasks"], len(summary.get("failed") or []), finished, study.turns)
