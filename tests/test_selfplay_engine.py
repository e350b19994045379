"""engine/selfplay without the web app: puzzle source handling, the filters against the real
sandbox, the prompts, verified-pair selection, and the pipeline end to end on a tiny random model
(counts add up, batches are saved, a rerun resumes)."""
import json
import types

import pytest

from engine.lm.prompt_tokens import token_aligned
from engine.lm.tiny import build_tiny_model
from engine.lm.transformers_backend import TransformersModel
from engine.sandbox import verify_many
from engine.selfplay import filters
from engine.selfplay.filters import default_answers
from engine.selfplay.generation_prompt import generated_function, generation_prompt, stops, written_solution
from engine.selfplay.p3 import TestSplitLeak, load_p3, one_per_problem
from engine.selfplay.pipeline import (
    COUNTS,
    BatchStore,
    SelfPlayConfig,
    SelfPlayPipeline,
    filter_puzzles,
    new_counts,
    with_written,
)
from engine.selfplay.puzzle_code import (
    complete_function,
    extra_parameters,
    fingerprint,
    rename_function,
    renamed_as_written,
)
from engine.selfplay.seeds import SEED_PUZZLES
from engine.selfplay.solving_prompts import ChatPrefillStyle, ChatStyle, CompletionStyle, solving_style
from engine.selfplay.training_text import is_training_example, shortest_distinct, training_example
from tests.support import BENCHMARK_DATA

SAT = "def sat(s: str, n: int = 3):\n    \"\"\"Repeat.\"\"\"\n    return s == 'ab' * n and len(s) > 5"


def verify(jobs):
    return verify_many(jobs)


@pytest.fixture(scope="module")
def p3():
    return load_p3(BENCHMARK_DATA / "p3")


def test_renaming_headers_and_fingerprints():
    assert rename_function(SAT, "f3").startswith("def f3(s: str, n: int=3):\n    return")
    assert extra_parameters(SAT) == "n: int = 3"
    assert extra_parameters("def sat(x: List[int], a=[1, 2], b='q'):\n    return x") == "a=[1, 2], b='q'"
    # Names, formatting, comments and docstrings do not make a new puzzle; anything else does.
    same = "def f9(t: str, k: int=3) -> bool:\n    # a comment\n    return t == 'ab'*k and len(t)>5\n"
    assert fingerprint(same) == fingerprint(SAT)
    assert fingerprint(SAT.replace("> 5", "> 6")) != fingerprint(SAT)
    assert fingerprint(SAT.replace("'ab'", "'ba'")) != fingerprint(SAT)


def test_a_completion_is_cut_where_its_function_ends():
    text = complete_function("def f7(", "x: int,\n       y=2):\n    return x > y\n\nassert f7(3)\ndef f8(z):\n")
    assert text == "def f7(x: int,\n       y=2):\n    return x > y\n"
    assert complete_function("def f7(", "x: int): return x == 1\nprint(1)") == "def f7(x: int): return x == 1\n"
    # Brackets and quotes inside strings and comments neither hold the signature open nor end it.
    text = complete_function("def f7(", 's: str = "(", t=\')[\'):  # (\n    return s.count("(") == 2\nprint("x")\n')
    assert text == 'def f7(s: str = "(", t=\')[\'):  # (\n    return s.count("(") == 2\n'
    assert complete_function("def f7(", 'x: int):\n    """Doc (\n    """\n    return x == 3\nf7(1)') == \
        'def f7(x: int):\n    """Doc (\n    """\n    return x == 3\n'
    # Junk the tokenizer cannot read (an unclosed triple quote) after the function does not stay.
    assert complete_function("def f7(", 'x: int):\n    return x == 3\n"""note\n') == \
        "def f7(x: int):\n    return x == 3\n"


def test_prompt_examples_keep_their_authors_layout():
    source = ('def sat(moves: List[int], start=[[6, 0, 3], [7, 1, 4]]):\n    """Doc\n    string"""\n\n'
              '    locs = {i: [x, y] for y, row in enumerate(start)}  # where sat looks\n'
              '    return sat is not None and "sat" in str(moves)\n')
    renamed = renamed_as_written(source, "f3")
    assert renamed == ('def f3(moves: List[int], start=[[6, 0, 3], [7, 1, 4]]):\n\n'
                       '    locs = {i: [x, y] for y, row in enumerate(start)}  # where sat looks\n'
                       '    return f3 is not None and "sat" in str(moves)')
    assert fingerprint(renamed) == fingerprint(source)
    assert "((" not in renamed_as_written("def sat(x: int):\n    return (x * 2) == 4\n", "f1")


BAD = {
    "parses": "def f(x: int:\n    return x",
    "signature": "def f(x: int, y: int):\n    return x == y",
    "signature (bool)": "def f(b: bool):\n    return b",
    "signature (no annotation)": "def f(x, a=1):\n    return x == a",
    "answer_used": "def f(x: int):\n    return 7 * 6 == 42",
    "sandbox": "def f(x: int, a=1 // 0):\n    return x == a",
    "sandbox (slow)": "def f(x: int):\n    while True:\n        pass\n    return x == 1",
    "trivial": "def f(x: List[int]):\n    return len(x) == 2",
    "trivial (int)": "def f(n: int):\n    return n * n == 49",
    "trivial (a default copied)": "def f(x: int, a=1073258, b=1230200):\n    return a in range(x) and x == b",
}
GOOD = "def f(n: int):\n    return n % 1000 == 137 and n > 10 ** 6"
BOOLS = "def f(bits: List[bool], n=9):\n    return len(bits) == n and sum(bits) == 4 and bits[0]"


def test_defaults_of_the_answer_type_are_tried_but_one_that_fails_does_not_reject():
    puzzle = "def f(s: str, target='kqkq', n=2, words=['ab', 'x'], flag=True):\n    return s * n == target"
    [candidate], _ = filter_puzzles([puzzle], set(), verify, counts := new_counts())
    assert default_answers(candidate.sat, "str") == ["kqkq"]  # n, words and flag are not strs
    assert default_answers(candidate.sat, ("list", "str")) == [["ab", "x"]]
    assert default_answers("def sat(x: float, a=1e999, b=2.5, c=3):\n    return x > a", "float") == [2.5, 3]
    assert candidate.accepted and counts["rejected_trivial"] == 0, candidate.detail


def test_a_list_of_bools_is_an_answer_the_paper_keeps():
    counts = new_counts()
    [candidate], _ = filter_puzzles([BOOLS], set(), verify, counts)
    assert candidate.accepted and candidate.answer_type == "List[bool]", candidate.detail


def test_parse_failures_are_counted_by_cause():
    items = [{"source": "def f(x: int):\n    return (x +", "finish": "length"},
             {"source": "def f(x: int):\nreturn x == 1", "finish": "stop"},
             {"source": "def f(x: int):\n    This puzzle checks that the answer is right\n", "finish": "eos"},
             {"source": "Here is a puzzle for you", "finish": "eos"},
             {"source": "def f(x: int):\n    return x ==", "finish": "stop"}]
    counts = new_counts()
    candidates, _ = filter_puzzles(items, set(), verify, counts)
    assert [c.cause for c in candidates] == ["truncated", "indentation", "prose", "prose", "syntax"]
    assert (counts["parse_truncated"], counts["parse_indentation"], counts["parse_prose"], counts["parse_syntax"]) \
        == (1, 1, 2, 1) and counts["rejected_parses"] == 5
    assert all(c.rejected_by == "parses" for c in candidates)


def test_each_filter_rejects_what_it_should_and_the_counts_add_up():
    renamed = "def g(m: int):\n    return m % 1000 == 137 and m > 10 ** 6  # same puzzle"
    functions = [*BAD.values(), GOOD, renamed, SEED_PUZZLES[0].sat]
    counts = new_counts()
    seen = {fingerprint(SEED_PUZZLES[0].sat)}  # a known puzzle (as the prompt's examples are)
    candidates, timing = filter_puzzles(functions, seen, verify, counts)
    reasons = [c.rejected_by for c in candidates]
    assert reasons == ["parses", "signature", "signature", "signature", "answer_used", "sandbox", "sandbox",
                       "trivial", "trivial", "trivial", "", "duplicate", "duplicate"]
    # The first small answer that satisfies each trivial puzzle comes back from the sandbox as data.
    assert candidates[7].detail.endswith("(got [-1, -1])") and candidates[8].detail.endswith("(got -7)")
    assert candidates[9].detail.endswith("(got 1230200)")
    accepted = candidates[10]
    assert accepted.sat.startswith("def sat(n: int):") and accepted.answer_type == "int"
    assert counts["generated"] == len(functions) == sum(counts[k] for k in COUNTS if k.startswith("rejected_")) \
        + counts["accepted"]
    assert counts["accepted"] == 1 and counts["rejected_trivial"] == 3 and counts["rejected_duplicate"] == 2
    assert accepted.fingerprint in seen and timing.items == len(functions)


def test_the_generation_prompt_fits_the_context_and_never_shows_the_test_split(p3):
    train = [p for p in one_per_problem(p3) if p.split == "train"]
    count = lambda text: len(text) // 3  # noqa: E731 - a stand-in tokenizer: about 3 characters a token
    prompt = generation_prompt(train, count, context_tokens=1024, generation_tokens=200)
    assert prompt.text.startswith("from typing import List\n\ndef f1(") and prompt.text.endswith(prompt.header)
    assert prompt.header == f"def f{prompt.examples + 1}(" and 2 < prompt.examples < len(train)
    assert count(prompt.text) <= 1024 - 200 and '"""' not in prompt.text
    bigger = generation_prompt(train, count, context_tokens=2048, generation_tokens=200)
    assert bigger.examples > prompt.examples
    assert generated_function(prompt, "x: int):\n    return x > 3\n\ndef f99(y):") == \
        f"{prompt.header}x: int):\n    return x > 3\n"
    with pytest.raises(TestSplitLeak):
        generation_prompt(train + [next(p for p in p3 if p.split == "test")], count)


def test_the_pair_and_chat_forms_show_solutions_or_instructions_and_read_back_what_was_written(p3):
    train = [p for p in one_per_problem(p3) if p.split == "train"]
    count = lambda text: len(text) // 3  # noqa: E731
    pair = generation_prompt(train, count, context_tokens=1024, generation_tokens=200, form="pair")
    k = pair.examples + 1
    assert pair.header == f"def f{k}(" and "def g1(" in pair.text and "assert f1(g1())" in pair.text
    completion = f"x: int):\n    return x % 7 == 3 and x > 100\n\ndef g{k}() -> int:\n    return next(i for i in " \
                 f"range(101, 200) if f{k}(i))\n"
    assert generated_function(pair, completion) == f"def f{k}(x: int):\n    return x % 7 == 3 and x > 100\n"
    solution = written_solution(pair, completion)
    assert solution.startswith("def sol() -> int:") and "sat(i)" in solution
    assert written_solution(pair, "x: int):\n    return x == 3\n") is None
    assert "\nassert " in stops("pair") and "\ndef " not in stops("pair") and stops("chat") == ()

    turns = []
    chat = generation_prompt(train, count, context_tokens=1024, generation_tokens=200, form="chat",
                             chat=lambda messages: turns.append(messages) or "<user>" + messages[0]["content"])
    assert chat.header == "" and 0 < chat.examples <= 10 and "Write one new puzzle" in chat.text
    reply = "Sure! Here it is:\n```python\nfrom typing import List\n\ndef f11(s: str, n=3):\n    return s == 'ab' * n\n\n" \
            "print(f11('ababab'))\n```\nIt checks a string."
    assert generated_function(chat, reply) == "def f11(s: str, n=3):\n    return s == 'ab' * n\n"
    assert generated_function(chat, "I cannot write puzzles.") == "I cannot write puzzles.\n"


def test_a_solution_written_with_its_puzzle_is_verified_first_among_its_attempts():
    passing = filters.Candidate("", sat="def sat(x: int):\n    return x == 3", solution="def sol():\n    return 3\n")
    plain = filters.Candidate("", sat="def sat(x: int):\n    return x == 4")
    rows = with_written([passing, plain], [[{"solution": "def sol():\n    return 2\n"}], []])
    assert rows[0][0] == {"solution": passing.solution, "text": passing.solution, "tokens": 0, "by": "writer"}
    assert len(rows[0]) == 2 and rows[1] == []


def test_an_opened_body_ends_where_the_models_tokenizer_ends_a_token():
    """The default tokenizer writes "\n    return" as "\n   " + " return": a prompt ending in four
    spaces left the model writing " return", and a two-line body one space off did not parse."""
    from transformers import AutoTokenizer

    from engine.lm.model_source import resolve_model_source

    source = resolve_model_source("")
    tokenizer = AutoTokenizer.from_pretrained(source.path, gguf_file=source.gguf_file)
    align = lambda text: token_aligned(tokenizer, text)  # noqa: E731
    assert align("def g():\n    ") == "def g():\n   " and align("def g():\n") == "def g():\n"
    sat = rename_function(SAT, "sat")
    for style in (CompletionStyle(align), ChatPrefillStyle(lambda messages: "<|user|>", align)):
        assert style.prompt(sat).endswith("def g6(n: int = 3) -> str:\n   " if style.name == "completion"
                                          else "def g(n: int = 3) -> str:\n   ")
        # What the model writes next, " x = ...", completes the body as it would have in training.
        assert style.solution(sat, " x = 'ab'\n    return x * n\n") == \
            "def sol(n: int=3) -> str:\n    x = 'ab'\n    return x * n\n"
    # Unaligned, the same answer is one space off on its first line and does not parse.
    assert CompletionStyle().solution(sat, " x = 'ab'\n    return x * n\n") is None


def test_each_solving_style_prompts_and_reads_back_a_solution():
    sat = rename_function(SAT, "sat")
    completion = CompletionStyle()
    prompt = completion.prompt(sat)
    assert "assert f5(g5())" in prompt and prompt.endswith("def f6(s: str, n: int=3):\n    return s == 'ab' * n "
                                                           "and len(s) > 5\n\ndef g6(n: int = 3) -> str:\n    ")
    # The worked examples declare their answer's type as the opened answer does.
    assert "def g4() -> List[str]:\n    return ['z'" in prompt
    assert completion.solution(sat, "return 'ab' * n\n\nassert f6(g6())") == \
        "def sol(n: int=3) -> str:\n    return 'ab' * n\n"
    assert completion.solution(sat, "This is prose, not code.\n") is None
    assert completion.solution(sat, "\ndef h():\n    return 1") is None  # an empty body

    chat = ChatStyle()
    messages = chat.prompt(sat)
    assert messages[0]["role"] == "user" and "```python\ndef f(s: str, n: int=3)" in messages[0]["content"]
    reply = "Sure!\n```python\ndef helper():\n    return 'ab'\n\ndef g(n: int = 3):\n    return helper() * n\n```"
    solution = chat.solution(sat, reply)
    assert solution.startswith("def sol(n: int=3):\n\n    def helper():")
    assert chat.solution(sat, "I cannot solve this.") is None

    prefill = ChatPrefillStyle(lambda messages: "<|user|>" + messages[0]["content"] + "<|assistant|>")
    assert prefill.prompt(sat).endswith("<|assistant|>```python\ndef g(n: int = 3) -> str:\n    ")
    assert prefill.solution(sat, "return 'ab' * n\n```\nDone.") == "def sol(n: int=3) -> str:\n    return 'ab' * n\n"
    with pytest.raises(ValueError, match="unknown prompt style"):
        solving_style("poetry")
    jobs = [{"id": "c", "kind": "puzzle", "sat": sat, "sol": completion.solution(sat, "return 'ab' * n\n")},
            {"id": "p", "kind": "puzzle", "sat": sat, "sol": solution}]
    assert all(v.passed for v in verify_many(jobs))


def test_verified_pairs_keep_the_shortest_distinct_solutions_in_the_papers_format():
    solutions = [f"def sol():\n    return {'1 + ' * i}137" for i in range(12)]
    solutions.append("def sol():\n    # the same as the shortest\n    return 137")
    kept = shortest_distinct(solutions)
    assert len(kept) == 8 and kept[0] == "def sol():\n    return 137" and kept[-1].count("1 +") == 7
    example = training_example(SAT, "def sol(n=3):\n    return 'ab' * n")
    assert example == ("def f(s: str, n: int=3):\n    return s == 'ab' * n and len(s) > 5\n\n"
                       "def g(n=3) -> str:\n    return 'ab' * n\n\nassert f(g())\n")
    assert is_training_example(example)
    # A solution that declares its own return type keeps it; an unannotated puzzle adds none.
    assert "def g(n=3) -> 'str':" in training_example(SAT, "def sol(n=3) -> 'str':\n    return 'ab' * n")
    assert "def g():\n" in training_example("def sat(x):\n    return x == 1", "def sol():\n    return 1")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return TransformersModel.load(str(build_tiny_model(tmp_path_factory.mktemp("tiny"))))


def test_pipeline_end_to_end_on_a_tiny_model_saves_batches_and_resumes(tiny_model, p3, tmp_path):
    train = [p for p in one_per_problem(p3) if p.split == "train"]
    config = SelfPlayConfig(batches=2, puzzles_per_prompt=4, attempts=2, generation_tokens=24, solving_tokens=12,
                            context_tokens=600)
    events = []
    store = BatchStore(tmp_path / "run")
    summary = SelfPlayPipeline(tiny_model, train, verify, config, store, events.append).run()
    counts = summary.counts
    assert counts["generated"] == 8
    assert counts["generated"] == counts["accepted"] + sum(counts[f"rejected_{name}"] for name in filters.FILTERS)
    assert counts["attempts"] == counts["accepted"] * 2 and counts["solved"] <= counts["accepted"]
    assert [e["stage"] for e in events[:5]] == ["generate", "filter", "solve", "verify", "done"]
    assert summary.timings["generate"]["tokens"] > 0 and summary.resumed == 0
    saved = store.completed()
    assert sorted(saved) == [0, 1] and all(len(b["rejected"]) + len(b["puzzles"]) == 4 for b in saved.values())

    # A crash mid-write leaves a torn line; the rerun ignores it and redoes only the missing batch.
    lines = store.path.read_text().splitlines()
    store.path.write_text(lines[0] + "\n" + lines[1][: len(lines[1]) // 2])
    events.clear()
    again = SelfPlayPipeline(tiny_model, train, verify, config, store, events.append).run()
    assert again.resumed == 1 and {e["batch"] for e in events} == {1}
    assert again.counts["generated"] == 8
    assert json.loads(store.path.read_text().splitlines()[-1])["index"] == 1


def test_a_test_split_puzzle_cannot_reach_a_prompt_or_the_style_measurement(tiny_model, p3):
    from engine.selfplay.style_choice import measure_styles

    test_puzzle = next(p for p in p3 if p.split == "test")
    config = SelfPlayConfig(batches=1, puzzles_per_prompt=2, attempts=1, generation_tokens=8, context_tokens=600)
    with pytest.raises(TestSplitLeak):
        SelfPlayPipeline(tiny_model, [test_puzzle], verify, config, BatchStore("/nonexistent")).run_batch(0)
    with pytest.raises(TestSplitLeak):
        measure_styles(tiny_model, [types.SimpleNamespace(sat=test_puzzle.sat, split="test")], verify, config)
