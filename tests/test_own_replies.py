"""A model's own chat-form answers to MBPP train tasks as rehearsal data: the `mbpp-train` run holds
only the tasks a round may learn from, the sandbox's verdict decides what is kept (passing, distinct,
ended by itself, a few a task), and the import puts them in the ledger once, where a round's `chat`
source reads them in the chat format."""
import io
import json

import pytest
from django.core.management import CommandError, call_command

from engine.datasets.held_out import trainable_mbpp
from engine.datasets.own_replies import kept_replies
from engine.evaluate.suite.registry import get_benchmark
from engine.evaluate.suite.runner import RunSettings, run_benchmark
from engine.lm.generation import Completion
from engine.sandbox import verify_many
from tests.support import BENCHMARK_DATA
from webapp.datasets.models import TrainingExample
from webapp.training import training_data


def fence(code: str) -> str:
    return f"Here it is:\n```python\n{code.rstrip()}\n```"


def replayed_run(tmp_path):
    """A real `mbpp-train` run (real sandbox) of a model that answers the first two tasks with the
    reference twice, a wrong function, and the reference cut at the token limit."""
    benchmark = get_benchmark("mbpp-train", BENCHMARK_DATA, prompt="instruct")
    tasks = benchmark.tasks()[:2]

    class Replay:
        name, backend, quantization, device, tokenizer = "replay", "replay", "none", "cpu", None

        def sample_many(self, prompts, n, params, cancel=None):
            out = []
            for prompt in prompts:
                task = next(t for t in tasks if benchmark.prompt(t, None) == prompt)
                right = fence(benchmark.reference(task))
                wrong = fence(f"def {task.data['entry_point']}(*args):\n    return None\n")
                out.append([Completion(right, 40, "stop"), Completion(right + "\n", 41, "stop"),
                            Completion(wrong, 12, "stop"), Completion(right, 384, "length")])
            return out

    result = run_benchmark(benchmark, Replay(), RunSettings(n=4, temperature=0.8, limit=2, ks=(1,)), verify_many).as_dict()
    path = tmp_path / "run.json"
    path.write_text(json.dumps(result))
    return tasks, result, path


def test_mbpp_train_holds_only_trainable_train_tasks():
    benchmark = get_benchmark("mbpp-train", BENCHMARK_DATA)
    ids = [int(task.task_id) for task in benchmark.tasks()]
    assert ids == [task.task_id for task in trainable_mbpp(BENCHMARK_DATA)]
    assert len(ids) == 248 and all(601 <= i <= 974 for i in ids) and benchmark.split == "train"


def test_only_passing_distinct_finished_answers_are_kept(tmp_path):
    tasks, result, _ = replayed_run(tmp_path)
    assert [row["c"] for row in result["rows"]] == [3, 3]  # the wrong one fails in the sandbox
    kept = kept_replies(result, BENCHMARK_DATA)
    assert [reply["task_id"] for reply in kept] == [int(t.task_id) for t in tasks]  # one each: the rest repeat it
    first = kept[0]
    assert first["messages"][-1] == {"role": "assistant", "content": fence(tasks[0].data["code"])}
    assert first["messages"][0]["role"] == "user" and tasks[0].data["text"] in first["messages"][0]["content"]
    assert first["verdict"]["status"] == "passed" and first["code"].strip()
    assert kept_replies(result, BENCHMARK_DATA, max_reply_tokens=20) == []  # every kept answer is 40 tokens
    with pytest.raises(ValueError, match="mbpp-train with the instruct prompt"):
        kept_replies({**result, "benchmark": {**result["benchmark"], "benchmark": "mbpp"}}, BENCHMARK_DATA)


@pytest.mark.django_db
def test_import_puts_them_in_the_ledger_once_and_a_round_reads_them(tmp_path):
    tasks, _, path = replayed_run(tmp_path)
    out = io.StringIO()
    call_command("import_replies", str(path), stdout=out)
    call_command("import_replies", str(path), stdout=out)
    assert out.getvalue().splitlines() == [f"2 passing answers kept from {path}; 2 new in the ledger",
                                           f"2 passing answers kept from {path}; 0 new in the ledger"]
    rows = list(TrainingExample.objects.order_by("id"))
    assert [(r.provenance, r.task_source, r.model_name) for r in rows] == [
        ("own verified reply", f"mbpp:{t.task_id}", "replay") for t in tasks]
    examples, ids = training_data.collect(("chat",))
    assert ids["examples"] == [r.pk for r in rows]
    assert [list(e.messages) for e in examples] == [r.messages for r in rows]

    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(CommandError, match="broken.json"):
        call_command("import_replies", str(broken))
    assert TrainingExample.objects.count() == 2
