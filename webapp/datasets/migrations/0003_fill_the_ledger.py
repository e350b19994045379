"""Fill the ledger: existing rows get their task's source, and every verified chat repair written
before the ledger existed gets its row (the messages the model was given: its branch, failed and
empty turns left out, each user message as the model saw it)."""
from django.db import migrations

SHOWN = ("complete", "cancelled")


def _model_input(message_model, reply):
    by_id = {m.pk: m for m in message_model.objects.filter(conversation_id=reply.conversation_id)}
    path, node, seen = [], reply, set()
    while node is not None and node.pk not in seen:
        seen.add(node.pk)
        path.append(node)
        node = by_id.get(node.parent_id)
    history = []
    for message in reversed(path[1:]):
        text = message.prompt or message.content
        if text and message.status in SHOWN:
            history.append({"role": message.role, "content": text})
    return history


def fill(apps, schema_editor):
    example_model = apps.get_model("datasets", "TrainingExample")
    message_model = apps.get_model("chat", "Message")
    for example in example_model.objects.exclude(source_message=None).select_related("source_message__conversation"):
        example.task_source = example.source_message.conversation.source or ""
        example.save(update_fields=["task_source"])
    repairs = (message_model.objects.filter(role="assistant", kind="repair", status="complete",
                                            verdict__status="passed", training_example__isnull=True)
               .select_related("conversation"))
    for reply in repairs:
        feedback = message_model.objects.filter(pk=reply.parent_id).values_list("content", flat=True).first() or ""
        example_model.objects.create(
            provenance="human-feedback repair", prompt=_model_input(message_model, reply), completion=reply.content,
            code=reply.code, feedback=feedback, model_name=reply.model_name, verdict=reply.verdict or {},
            turn=reply.turn, created_by_id=reply.owner_id, source_message=reply,
            task_source=reply.conversation.source or "")


class Migration(migrations.Migration):

    dependencies = [
        ("datasets", "0002_trainingexample_task_source"),
        ("chat", "0004_model_version_in_serving"),
    ]

    operations = [
        migrations.RunPython(fill, migrations.RunPython.noop),
    ]
