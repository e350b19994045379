"""Who wrote a generated puzzle, and which versions solve it: a batch saved by a generation run
records its writer (a version of this project's model and its self-play iteration, or a teacher),
a solution written with the puzzle is the writer's, and the puzzle's list row and page say so."""
import pytest

from engine.selfplay.pipeline import SelfPlayConfig, new_counts
from tests.support import user_with_roles
from webapp.puzzles.generation_runs import _save_batch
from webapp.puzzles.models import Attempt, GenerationRun, Puzzle
from webapp.serving.models import ModelVersion
from webapp.serving.versions import active_version, iteration

pytestmark = pytest.mark.django_db


def candidate(n: int, solution: str | None = None) -> dict:
    sat = f"def sat(x: int):\n    return x % 1009 == {n} and x > 5000"
    return {"source": sat, "sat": sat, "answer_type": "int", "fingerprint": f"prov-{n}", "rejected_by": "",
            "detail": "", "cause": "", "solution": solution}


def saved(run: GenerationRun, writer: str, version: ModelVersion | None, attempts: list[list[dict]],
          candidates: list[dict], solver_version: int | None) -> list[Puzzle]:
    _save_batch(run, SelfPlayConfig.from_dict(run.config), {
        "candidates": candidates, "attempts": attempts, "counts": new_counts(), "writer": writer,
        "writer_version": version.pk if version else None, "solver": "student", "solver_version": solver_version})
    return list(Puzzle.objects.filter(generation_run=run).order_by("pk"))


def test_a_puzzle_records_its_writer_and_the_page_shows_which_versions_solve_it(client):
    base = active_version()
    child = ModelVersion.objects.create(name="v1 · round 1", parent=base, status="active")
    assert iteration(base) == 0 and iteration(child) == 1
    run = GenerationRun.objects.create(config=SelfPlayConfig(form="pair").as_dict(), model_name="student")
    good = "def sol():\n    return 5000 + (1009 - 5000 % 1009) + 1\n"
    [own] = saved(run, "student v1", child, [[
        {"solution": "def sol():\n    return 1\n", "text": "", "status": "failed", "by": "writer"},
        {"solution": good, "text": "", "status": "passed"},
        {"solution": "def sol():\n    return 2\n", "text": "", "status": "failed"}]], [candidate(1)], child.pk)
    assert (own.model_name, own.model_version, own.iteration) == ("student v1", child, 1)
    written = own.attempts.get(style="written")
    assert written.model_name == "student v1" and written.model_version == child
    assert {a.model_version_id for a in own.attempts.exclude(style="written")} == {child.pk}
    Attempt.objects.create(puzzle=own, code=good, status="passed", model_name="base", model_version=base)

    teacher_run = GenerationRun.objects.create(config=SelfPlayConfig(writer="teacher").as_dict(), model_name="t")
    [taught] = saved(teacher_run, "qwen @ 127.0.0.1:8080", None, [[]], [candidate(2)], child.pk)
    assert (taught.model_name, taught.model_version, taught.iteration) == ("qwen @ 127.0.0.1:8080", None, None)

    client.force_login(user_with_roles("rita", "reviewer"))
    rows = client.get("/puzzles/?source=generated").content.decode()
    assert "by v1 · round 1, iteration 1" in rows and "by qwen @ 127.0.0.1:8080" in rows
    page = client.get(f"/puzzles/{own.pk}/").content.decode()
    assert 'data-testid="written-by">v1 · round 1 <span class="muted small">(iteration 1)' in page
    # Solve rate per version: the base solved it once in one try, v1 once in two (the writer's own
    # solution is not an attempt).
    rates = page.split('data-testid="solve-rates"')[1].split("</table>")[0]
    assert rates.index(base.name) < rates.index("v1 · round 1")
    assert "1 of 1" in rates and "1 of 2" in rates
