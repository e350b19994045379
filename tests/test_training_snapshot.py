"""What a training snapshot may hold: nothing whose content is a test item, whatever door it came
through (a pasted test puzzle, a generated puzzle equal to one, a chat repair of an MBPP test
task typed by hand); in `own` mode only what this project's models wrote; never a puzzle a
reviewer rejected or flagged."""
import pytest

from engine.datasets.held_out import build_index
from engine.datasets.mbpp import load_mbpp
from engine.selfplay.p3 import load_p3
from engine.selfplay.puzzle_code import fingerprint, rename_function
from tests.support import BENCHMARK_DATA, user_with_roles
from webapp.chat import testing, user_turns
from webapp.chat.models import Conversation, Message
from webapp.datasets.models import TrainingExample
from webapp.puzzles.models import Attempt, Puzzle
from webapp.puzzles.reviews import add_review
from webapp.refusals import Invalid
from webapp.serving.versions import active_version
from webapp.training import training_data

pytestmark = pytest.mark.django_db
PASSED = {"status": "passed", "detail": "", "tests": []}


@pytest.fixture(scope="module")
def p3():
    return load_p3(BENCHMARK_DATA / "p3")


@pytest.fixture(scope="module")
def index():
    return build_index(BENCHMARK_DATA)


def pasted(puzzle) -> str:
    """A test puzzle as a user might paste it: renamed, reformatted, without its docstring."""
    return rename_function(puzzle.sat, "my_puzzle").replace("    ", "  ")


def test_the_index_knows_test_items_by_content_not_by_label(p3, index):
    test = next(p for p in p3 if p.split == "test")
    validation = next(p for p in p3 if p.split == "validation")
    train = next(p for p in p3 if p.split == "train")
    assert index.match(f"Help me with this one:\n```python\n{pasted(test)}\n```") == f"p3-test:{test.name}"
    assert index.match(validation.sat) == f"p3-validation:{validation.name}"
    assert index.match(train.sat) is None
    mbpp = load_mbpp(BENCHMARK_DATA)
    statement = mbpp[11].text.upper().replace(" ", "  ") + "!!"
    assert index.match(f"please: {statement} thanks") == "mbpp:11"
    assert index.match(mbpp[700].text) is None or index.match(mbpp[700].text).startswith("mbpp-plus:")
    assert index.match("def add(a, b):\n    return a + b") is None
    assert {"p3", "mbpp", "humaneval"} <= set(index.parts)


def test_a_pasted_test_puzzle_is_refused_and_a_pasted_test_task_is_labelled(p3):
    ada = user_with_roles("ada")
    test = next(p for p in p3 if p.split == "test")
    with pytest.raises(Invalid, match="held-out puzzle"):
        user_turns.open_conversation(ada, "puzzle", sat=pasted(test))
    assert not Conversation.objects.exists()
    task = load_mbpp(BENCHMARK_DATA)[11]
    fields = {"problem": task.text, "tests": task.tests}
    assert user_turns.held_out_source("task", "user", fields) == "mbpp:11"
    assert user_turns.held_out_source("task", "mbpp:11", fields) == "mbpp:11"
    assert user_turns.held_out_source("free", "user", {}, "How do I reverse a list?") == "user"


def repaired_free_chat(owner, pasted_text: str) -> Message:
    """A free chat (labelled "user") whose second message pastes `pasted_text`; the repair that
    follows is verified, so the ledger keeps it."""
    conversation = Conversation.objects.create(owner=owner, kind="free", source="user")

    def message(**fields):
        return Message.objects.create(conversation=conversation, owner=owner, **fields)

    first = message(role="user", content="Hi! Can you help me with Python?")
    hello = message(role="assistant", parent=first, content="Sure.", turn=1)
    ask = message(role="user", parent=hello, content=f"Solve this:\n```python\n{pasted_text}\n```")
    answer = message(role="assistant", parent=ask, turn=2, content="```python\ndef sol():\n    return 1\n```",
                     code="def sol():\n    return 1\n")
    feedback = message(role="user", kind="feedback", parent=answer, content="Try harder.", prompt="Try harder.")
    repair = message(role="assistant", kind="repair", parent=feedback, turn=3, model_name="tiny",
                     content="```python\ndef sol():\n    return 2\n```", code="def sol():\n    return 2\n")
    testing.record_verdict(repair, dict(PASSED))
    return repair


def test_a_snapshot_leaves_out_test_items_whatever_their_labels_say(p3):
    ada = user_with_roles("ada")
    test, train = next(p for p in p3 if p.split == "test"), next(p for p in p3 if p.split == "train")
    leaked = repaired_free_chat(ada, pasted(test))
    fine = repaired_free_chat(ada, train.sat)
    leaked_row = TrainingExample.objects.get(source_message=leaked)
    fine_row = TrainingExample.objects.get(source_message=fine)
    assert leaked_row.trainable and leaked_row.task_source == "user"  # the label alone would let it through

    # A generated puzzle that happens to be a test puzzle, solved and verified.
    generated = Puzzle.objects.create(name="gen-x", sat=rename_function(test.sat, "sat"), fingerprint=fingerprint(test.sat),
                                      source=Puzzle.Source.GENERATED, split="train", status=Puzzle.Status.SOLVED)
    attempt = Attempt.objects.create(puzzle=generated, code="def sol():\n    return 0", status="passed", kept=True)

    examples, ids = training_data.collect()
    assert ids["examples"] == [fine_row.pk] and attempt.pk not in ids["attempts"]
    assert ids["excluded"] == {f"example:{leaked_row.pk}": f"p3-test:{test.name}",
                               f"attempt:{attempt.pk}": f"p3-test:{test.name}"}
    assert all(test.sat.split("\n")[1].strip() not in str(e.messages) + e.text for e in examples)


def _pair(source: str, origin: str, n: int, writer=None) -> Attempt:
    puzzle = Puzzle.objects.create(name=f"{source}-{n}", sat=f"def sat(x: int):\n    return x == {1000 + n}",
                                   fingerprint=f"{source}-{n}", source=source, split="train",
                                   status=Puzzle.Status.SOLVED, model_version=writer)
    return Attempt.objects.create(puzzle=puzzle, code=f"def sol():\n    return {1000 + n}", status="passed",
                                  kept=True, origin=origin)


def test_own_data_is_only_what_the_models_wrote_and_a_rejected_puzzle_leaves_the_next_snapshot():
    Puzzle.objects.all().delete()  # the migrations' seed puzzles and their references
    others = [_pair(Puzzle.Source.P3_TRAIN, Attempt.Origin.REFERENCE, 1),
              _pair(Puzzle.Source.P3_VARIANT, Attempt.Origin.REFERENCE, 2),
              _pair(Puzzle.Source.P3_TRAIN, Attempt.Origin.SEARCH, 3),
              _pair(Puzzle.Source.P3_TRAIN, Attempt.Origin.MODEL, 4),  # the model solved a P3 puzzle
              _pair(Puzzle.Source.SEED, Attempt.Origin.REFERENCE, 5),
              _pair(Puzzle.Source.GENERATED, Attempt.Origin.USER, 6)]  # a person solved a generated one
    version = active_version()
    others.append(_pair(Puzzle.Source.GENERATED, Attempt.Origin.MODEL, 9))  # a teacher wrote it: no version
    own = [_pair(Puzzle.Source.GENERATED, Attempt.Origin.MODEL, 7, version),
           _pair(Puzzle.Source.GENERATED, Attempt.Origin.MODEL, 8, version)]
    ada = user_with_roles("ada")
    testing_row = repaired_free_chat(ada, "def f(x: int):\n    return x == 5")
    _, all_ids = training_data.collect(data="all")
    assert sorted(all_ids["attempts"]) == sorted(a.pk for a in others + own) and len(all_ids["examples"]) == 1
    _, own_ids = training_data.collect(data="own")
    assert own_ids == {"attempts": [a.pk for a in own], "examples": []}
    assert TrainingExample.objects.filter(source_message=testing_row).exists()

    reviewer = user_with_roles("rita", "reviewer")
    add_review(reviewer, own[0].puzzle, "reject")
    add_review(reviewer, own[1].puzzle, "flag")
    _, after = training_data.collect(data="all")
    assert set(after["attempts"]) == {a.pk for a in others}
    add_review(reviewer, own[1].puzzle, "approve")  # the latest verdict counts
    assert training_data.collect(data="own")[1]["attempts"] == [own[1].pk]


def _failed(pair: Attempt, n: int, status: str = "failed") -> Attempt:
    return Attempt.objects.create(puzzle=pair.puzzle, code=f"def sol():\n    return {n}", status=status,
                                  origin=pair.origin)


def test_the_papers_controls_references_alone_and_unverified_pairs_of_the_same_number():
    Puzzle.objects.all().delete()
    references = [_pair(Puzzle.Source.P3_TRAIN, Attempt.Origin.REFERENCE, n) for n in range(4)]
    variant = _pair(Puzzle.Source.P3_VARIANT, Attempt.Origin.REFERENCE, 4)
    search = _pair(Puzzle.Source.P3_TRAIN, Attempt.Origin.SEARCH, 5)
    seed = _pair(Puzzle.Source.SEED, Attempt.Origin.REFERENCE, 6)
    verified = [*references, variant, search, seed]
    Attempt.objects.create(puzzle=references[0].puzzle, code="def sol():\n    return 1000  # longer",
                           status="passed", kept=False, origin=Attempt.Origin.REFERENCE)  # verified, not kept
    failed = [_failed(variant, 1), _failed(search, 2, "timeout"), _failed(references[1], 3, "error")]
    unsolved = _pair(Puzzle.Source.P3_VARIANT, Attempt.Origin.REFERENCE, 7)  # a variant whose reference failed
    Attempt.objects.filter(pk=unsolved.pk).update(status="failed", kept=False)
    Puzzle.objects.filter(pk=unsolved.puzzle_id).update(status=Puzzle.Status.UNSOLVED)
    failed.append(unsolved)
    held_out = _pair(Puzzle.Source.P3_TRAIN, Attempt.Origin.REFERENCE, 8)
    Puzzle.objects.filter(pk=held_out.puzzle_id).update(split="validation")
    _failed(held_out, 9)  # a failure on a held-out puzzle is never drawn either
    pending = _failed(references[2], 10, "pending")  # not judged yet: neither verified nor failed
    cut_off = Attempt.objects.create(puzzle=search.puzzle, code="    return 1 +", status="error",
                                     origin=Attempt.Origin.MODEL)  # cannot be written as f / g / assert

    _, ids = training_data.collect(("selfplay",), data="references")
    assert ids["attempts"] == [a.pk for a in references]
    _, all_ids = training_data.collect(("selfplay",), data="all")
    assert sorted(all_ids["attempts"]) == [a.pk for a in verified]
    examples, unverified = training_data.collect(("selfplay",), data="unverified")
    pool = {a.pk for a in verified + failed}
    assert len(unverified["attempts"]) == len(verified) == len(examples)  # the same number as verified data
    assert set(unverified["attempts"]) <= pool and not {pending.pk, cut_off.pk} & set(unverified["attempts"])
    assert unverified["failed"] == [pk for pk in unverified["attempts"] if pk in {a.pk for a in failed}]
    assert unverified["failed"]  # 7 drawn from 11 of which 4 failed: the seeded draw keeps some
    assert training_data.collect(("selfplay",), data="unverified")[1] == unverified  # seeded: a resume sees the same
    assert {a.pk for a in training_data.unverified_pairs(100)} == pool  # the whole pool, less the cut-off reply


def test_selfplay_own_refuses_what_would_add_reference_data():
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="--data own trains only on what the models wrote"):
        call_command("selfplay", "--data", "own", "--variants", "1")
    with pytest.raises(CommandError, match="the mbpp sources"):
        call_command("selfplay", "--data", "own", "--sources", "selfplay,mbpp")
    with pytest.raises(CommandError, match="the mbpp sources"):
        call_command("selfplay", "--data", "own", "--sources", "selfplay,mbpp-chat")
    with pytest.raises(CommandError, match="--data own"):
        call_command("selfplay", "--data", "own", "--search-solutions")
    with pytest.raises(CommandError, match="a teacher's puzzles are not its own"):
        call_command("selfplay", "--data", "own", "--writer", "teacher")


def test_mbpp_rehearsal_adds_train_tasks_only_in_the_papers_format_and_never_in_own_mode(index):
    examples, ids = training_data.collect(("mbpp",))
    tasks = load_mbpp(BENCHMARK_DATA)
    assert ids["mbpp"] and all(601 <= task_id <= 974 for task_id in ids["mbpp"])
    assert len(ids["mbpp"]) < 374  # the train tasks MBPP+ also holds are left out
    assert not any(index.match(tasks[task_id].code) for task_id in ids["mbpp"])
    first = tasks[ids["mbpp"][0]]
    assert examples[0].source == f"mbpp:{first.task_id}"
    assert examples[0].text.startswith(f"You are an expert Python programmer, and here is your task: {first.text}")
    assert examples[0].text.endswith(f"[BEGIN]\n{first.code.strip()}\n[DONE]".replace("\r\n", "\n"))
    assert training_data.collect(("mbpp",), data="own") == ([], {"attempts": [], "examples": []})
    assert "mbpp" not in training_data.collect()[1]  # asked for per round, not by default


def test_mbpp_chat_rehearsal_asks_as_the_chat_check_does_and_answers_in_one_code_block(index):
    from engine.evaluate.suite.mbpp import MbppValidation

    examples, ids = training_data.collect(("mbpp", "mbpp-chat"))
    assert ids["mbpp_chat"] == ids["mbpp"]  # the same tasks, in both forms
    chat = [e for e in examples if e.source.startswith("mbpp-chat:")]
    assert len(chat) == len(ids["mbpp_chat"]) and all(e.messages and not e.text for e in chat)
    task = load_mbpp(BENCHMARK_DATA)[ids["mbpp_chat"][0]]
    user, reply = chat[0].messages
    # the user turn is the chat-form check's prompt, word for word, for a train task
    check = MbppValidation(BENCHMARK_DATA, prompt="instruct")
    asked = check.prompt(check.load()[0], None)[0]["content"]
    assert user["role"] == "user" and user["content"].split("\n\n")[0] == asked.split("\n\n")[0]
    assert user["content"].split("\n\n")[-1] == asked.split("\n\n")[-1]
    assert task.text in user["content"] and all(test in user["content"] for test in task.tests)
    assert reply == {"role": "assistant", "content": f"```python\n{task.code.strip()}\n```".replace("\r\n", "\n")}
    assert not any(index.match(load_mbpp(BENCHMARK_DATA)[i].code) for i in ids["mbpp_chat"])
    assert training_data.collect(("mbpp-chat",), data="own") == ([], {"attempts": [], "examples": []})


def test_a_resumed_round_trains_on_the_same_rehearsed_mbpp_tasks():
    from engine.training.packing import snapshot_hash
    from webapp.training import rounds
    from webapp.training.models import TrainingRun

    examples, ids = training_data.collect(("selfplay", "mbpp", "mbpp-chat"))
    run = TrainingRun.objects.create(status="running", config={"sources": ["selfplay", "mbpp", "mbpp-chat"]},
                                     dataset=ids, dataset_hash=snapshot_hash(examples))
    again = rounds._examples_of(run)
    assert len(again) == len(examples) and sum(e.source.startswith("mbpp:") for e in again) == len(ids["mbpp"])
    assert sum(e.source.startswith("mbpp-chat:") for e in again) == len(ids["mbpp_chat"]) > 0
    assert snapshot_hash(again) == run.dataset_hash
