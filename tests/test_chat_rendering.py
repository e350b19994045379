"""What reaches a chat page from model or user text, and what the model is told (no services)."""
from html.parser import HTMLParser

import pytest

from engine.codechat import prompts
from engine.codechat.checks import entry_point_of, job_for, reply_code, split_tests, validate_tests
from engine.lm.code_extraction import close_open_fence
from webapp.chat import rate_limits
from webapp.chat.rendering import code_diff, render_markdown


@pytest.mark.parametrize("hostile, forbidden", [
    ("<script>alert(1)</script>", "<script"),
    ('<img src=x onerror="alert(1)">', "onerror"),
    ("[click](javascript:alert(1))", "javascript:"),
    ("[click](JaVaScRiPt:alert(1))", "javascript:"),
    ('<a href="data:text/html,<script>x</script>">d</a>', "data:"),
    ('<div hx-get="/admin/" hx-trigger="load">x</div>', "hx-get"),
    ('<p hx-on:click="alert(1)">x</p>', "hx-on"),
    ('<svg onload="alert(1)"></svg>', "onload"),
    ('<iframe src="/x"></iframe>', "<iframe"),
    ("<style>*{display:none}</style>", "<style"),
    ('<p style="position:fixed">x</p>', "style="),
    ("![pixel](https://tracker.example/p.png)", "<img"),
    ('```python" onmouseover="alert(1)\nx\n```', "onmouseover=\""),
    ("<form action=/chat/1/delete/ method=post><button>x</button></form>", "<form"),
])
def test_markdown_loses_everything_a_browser_or_htmx_would_act_on(hostile, forbidden):
    html = render_markdown(f"before {hostile} after")
    markup = " ".join(tags_and_attributes(html)).lower()  # text may mention anything; markup may not
    assert forbidden.lower().strip('<="') not in markup
    assert "before" in html and "after" in html


def tags_and_attributes(html: str) -> list[str]:
    found = []

    class Collector(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.append(tag)
            found.extend(f"{name}={value}" for name, value in attrs)

    Collector().feed(html)
    return found


def test_markdown_keeps_what_people_need():
    html = render_markdown("**Bold**, `x`, [docs](https://docs.python.org/3/)\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n"
                           "```python\nif a < b and c > d:\n    print('<b>')\n```")
    assert "<strong>Bold</strong>" in html and "<code>x</code>" in html and "<table>" in html
    assert 'href="https://docs.python.org/3/"' in html and 'rel="nofollow noopener noreferrer"' in html
    assert 'class="copy-button"' in html and '<span class="k">if</span>' in html  # highlighted by Pygments
    assert "&lt;b&gt;" in html and "<b>" not in html  # code stays text


@pytest.mark.parametrize("typed, shown", [
    ("What does <div> do in HTML?", "What does <div> do in HTML?"),
    ("Use List<int> here", "Use List<int> here"),
    ("compare a<b and b>c", "compare a<b and b>c"),
    ("<b>only html</b>", "<b>only html</b>"),
    ("<script>alert(1)</script>", "<script>alert(1)</script>"),
])
def test_angle_brackets_show_as_typed(typed, shown):
    """Escape, don't strip: a code chat is full of `<`, `>` and tags people mean as text."""
    html = render_markdown(typed)
    text = []

    class Text(HTMLParser):
        def handle_data(self, data):
            text.append(data)

    Text(convert_charrefs=True).feed(html)
    assert "".join(text).strip() == shown
    assert tags_and_attributes(html) == ["p"]


def test_a_reply_stopped_inside_a_code_block_renders_and_tests_as_code():
    stopped = "Here is the function:\n\n```python\ndef add(a, b):\n    return a +"
    html = render_markdown(stopped)
    assert "```" not in html and '<span class="k">def</span>' in html  # closed, highlighted, no literal fence
    assert reply_code("task", stopped, "add") == "def add(a, b):\n    return a +\n"  # kept: the check reports it
    own_example = ("```python\ndef add(a, b):\n    return a + b\n\n"
                   "assert add(1, 1) == 3  # the model's own, wrong\nprint(add(2, 2))\n```")
    assert reply_code("task", own_example, "add") == "def add(a, b):\n    return a + b\n"
    finished = "```python\nx = 1\n```\ntext after"
    assert close_open_fence(finished) == finished  # a closed block is left alone
    assert "text after" in render_markdown(finished)


def test_diff_between_turns():
    diff = code_diff("def f(x):\n    return x - 1\n", "def f(x):\n    return x + 1\n")
    assert "return x - 1" in diff and "return x + 1" in diff and 'class="gd"' in diff and 'class="gi"' in diff
    assert code_diff("same\n", "same\n") == ""


def test_tests_are_read_validated_and_name_the_entry_point():
    tests = split_tests("assert f(1) == 2\r\n\nassert f([1,\n  2]) == 3\n")
    assert tests == ["assert f(1) == 2", "assert f([1,\n  2]) == 3"]
    assert entry_point_of(tests + ["assert len(f(0)) == 1"]) == "f"  # builtins are not the entry point
    assert validate_tests(tests) == []
    assert validate_tests(["f(1) == 2", "assert f(1 =="]) == ["test 1 is not an assert statement",
                                                              "test 2 is not valid Python: '(' was never closed"]
    assert validate_tests([]) and "at least one test" in validate_tests([])[0]


def test_reply_code_and_jobs():
    reply = "Sure:\n```python\ndef helper():\n    pass\n```\nand\n```python\ndef add(a, b):\n    return a + b\n```"
    assert reply_code("task", reply, "add").startswith("def add")
    assert reply_code("puzzle", "```python\ndef sol():\n    return 3\n```").startswith("def sol")
    assert reply_code("task", "I cannot help with that.", "add") is None
    # MBPP 601: the asserts test max_chain_length and build Pairs, which the reply must keep defining.
    tests = ["assert max_chain_length([Pair(5, 24), Pair(15, 25)], 2) == 1", "assert max_chain_length([], 0) == 0"]
    assert entry_point_of(tests) == "max_chain_length"  # the outermost call, though Pair is called more
    pair = "class Pair:\n    def __init__(self, a, b):\n        self.a, self.b = a, b\n\n"
    reply = f"```python\n{pair}def max_chain_length(arr, n):\n    return n\n\nprint(max_chain_length([], 0))\n```"
    kept = reply_code("task", reply, entry_point_of(tests), tests)
    assert kept.startswith("class Pair:") and "def max_chain_length" in kept and "print(" not in kept
    assert job_for("task", "code", tests=["assert x"])["kind"] == "tests"
    assert job_for("puzzle", "code", sat="def sat(x: int): return True")["kind"] == "puzzle"


def test_repair_prompt_carries_results_and_feedback():
    verdict = {"status": "failed", "tests": [
        {"test": "assert f(1) == 2", "status": "passed", "detail": ""},
        {"test": "assert f(2) == 3", "status": "failed", "detail": "assert f(2) == 3 (got 4)"},
        {"test": "assert f(0) == 1", "status": "error", "detail": "ZeroDivisionError: division by zero"}]}
    prompt = prompts.repair_prompt("Off by one for even numbers.", verdict, "f")
    assert "1 of 3 tests passed." in prompt and "- failed: assert f(2) == 3 (got 4)\n" in prompt  # the test once
    assert "- error: assert f(0) == 1: ZeroDivisionError: division by zero" in prompt
    assert prompt.index("failed") < prompt.index("- passed")  # failures first
    assert "Feedback: Off by one for even numbers." in prompt and "Fix `f`" in prompt
    assert "no code block" in prompts.results_summary({"status": "error", "detail": "the reply has no code block"})
    assert "You are an expert Python programmer" in prompts.task_prompt("Add.", ["assert add(1, 1) == 2"])


def test_rate_limit_specs():
    assert rate_limits.parse_limits("20/minute, 300/day") == [(20, 60, "20/minute"), (300, 86400, "300/day")]
    assert rate_limits.parse_limits("") == []
    with pytest.raises(ValueError, match="COUNT/PERIOD"):
        rate_limits.parse_limits("lots")


def test_mbpp_splits_follow_the_official_task_ids():
    from engine.datasets.mbpp import load_mbpp, split_of
    from tests.support import BENCHMARK_DATA

    assert [split_of(i) for i in (1, 10, 11, 510, 511, 600, 601, 974)] == [
        "prompt", "prompt", "test", "test", "validation", "validation", "train", "train"]
    tasks = load_mbpp(BENCHMARK_DATA)
    assert len(tasks) == 974 and sum(t.split == "test" for t in tasks.values()) == 500
    assert not tasks[11].usable_for_training and tasks[601].usable_for_training
    assert not tasks[511].usable_for_training  # validation: what the gates select on
