"""The P3 judge as the paper's: a solution may call the puzzle by the name its prompt gave it (`f6` in
the completion prompt, `f` in the chat and paper-prefix prompts), the paper's own few-shot prefix is a
prompt style, and sampling records top-k and top-p as the paper used them."""
from engine.evaluate.p3_eval import P3EvalConfig
from engine.sandbox import verify_many
from engine.selfplay.pipeline import SelfPlayConfig
from engine.selfplay.solving_prompts import ChatStyle, CompletionStyle, paper_prefix, solving_style
from engine.selfplay.training_text import training_example
from tests.support import BENCHMARK_DATA

SAT = "def sat(x: int, a=37):\n    return x > a and x % 5 == 0"


def judged(sat: str, solution: str | None) -> str:
    assert solution is not None
    return next(iter(verify_many([{"id": "j", "kind": "puzzle", "sat": sat, "sol": solution, "timeout_s": 5}]))).status


def test_a_solution_that_calls_the_puzzle_by_its_prompt_name_is_accepted():
    completion = CompletionStyle()
    assert completion.called_as == "f6" and "def f6(x: int, a=37)" in completion.prompt(SAT)
    solution = completion.solution(SAT, "return next(i for i in range(1000) if f6(i, a))\n")
    assert "sat(i, a)" in solution and judged(SAT, solution) == "passed"
    reply = "```python\ndef g(a=37):\n    return next(i for i in range(1000) if f(i))\n```"
    assert judged(SAT, ChatStyle().solution(SAT, reply)) == "passed"
    # A name the solution binds itself is its own, not the puzzle.
    own = ChatStyle().solution(SAT, "```python\ndef g(a=37):\n    f = lambda v: v * 5\n    return f(a)\n```")
    assert "sat(" not in own and judged(SAT, own) == "passed"
    # Any other undefined name still fails, as it would under P3's judge.
    assert judged(SAT, completion.solution(SAT, "return next(i for i in range(1000) if f5(i))\n")) == "error"


def test_a_kept_solution_that_calls_the_puzzle_reads_as_f_in_training_text():
    text = training_example(SAT, "def sol(a=37):\n    return next(i for i in range(1000) if sat(i, a))\n")
    assert "if f(i, a)" in text and "sat" not in text


def test_the_papers_prefix_is_a_prompt_style():
    prefix = paper_prefix(BENCHMARK_DATA)
    style = solving_style("paper-prefix")
    prompt = style.prompt(SAT)
    assert prompt.startswith(prefix.rstrip()) and prompt.count("assert f(g())") == prefix.count("assert f(g())")
    assert prompt.endswith("def f(x: int, a=37):\n    return x > a and x % 5 == 0\n\ndef g(a=37) -> int:\n    ")
    assert judged(SAT, style.solution(SAT, "return 40\n")) == "passed"
    assert SelfPlayConfig(style="paper-prefix").style == "paper-prefix"


def test_sampling_settings_are_the_papers_and_recorded():
    config = P3EvalConfig()
    assert (config.top_k, config.top_p) == (50, 1.0) and {"top_k", "top_p"} <= set(config.as_dict())
    params = SelfPlayConfig(top_k=7, top_p=0.9).solving_params(0)
    assert (params.top_k, params.top_p) == (7, 0.9)
