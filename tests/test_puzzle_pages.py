"""The puzzle pages on PostgreSQL and Redis: the list and its filters, reviews and who may make
them, edits as new versions, hostile text, discussing a puzzle, solving one yourself on a real
verify worker, and a generation run from the form to its finished page on real workers (a tiny
random model on the gpu queue, the sandbox on the verify queue)."""
import re
import time

import pytest
from celery.exceptions import TimeoutError as CeleryTimeoutError
from django.db import connection
from django.utils.html import escape

from engine.selfplay.seeds import SEED_PUZZLES
from tests.support import signed_in_client as _client
from tests.support import start_worker, stop_worker
from tests.support import user_with_roles as _user
from webapp.chat.models import Conversation
from webapp.puzzles import solving
from webapp.puzzles.catalogue import import_seeds
from webapp.puzzles.models import Attempt, GenerationRun, Puzzle, Review

HTMX = {"HTTP_HX_REQUEST": "true"}
SEED = SEED_PUZZLES[0]
ROW = 'data-testid="puzzle-row"'


# --- fixtures --------------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def seeds(db):
    """The seed puzzles, as a fresh database has them (a transactional test elsewhere may have
    flushed the data migration's rows)."""
    import_seeds()


@pytest.fixture
def plain():
    return _client(_user("pat"))


@pytest.fixture
def reviewer_user():
    return _user("rita", "reviewer")


@pytest.fixture
def reviewer(reviewer_user):
    return _client(reviewer_user)


@pytest.fixture
def trainer():
    return _client(_user("tom", "trainer"))


def make(name: str, sat: str | None = None, **fields) -> Puzzle:
    sat = sat or f"def sat(n: int, k={len(name)}) -> bool:\n    return n == k  # {name}"
    fields.setdefault("source", Puzzle.Source.GENERATED)
    return Puzzle.objects.create(name=name, sat=sat, fingerprint=name[:32], answer_type="int", **fields)


def names(response) -> set[str]:
    """The puzzle names in a list response's rows."""
    return set(re.findall(r'data-testid="puzzle-row" data-puzzle="\d+" data-name="([^"]*)"', response.content.decode()))


def seed_puzzle() -> Puzzle:
    return Puzzle.objects.get(name=SEED.name, is_current=True)


# --- the list --------------------------------------------------------------------------------------
def test_the_list_shows_the_seed_puzzles(plain):
    response = plain.get("/puzzles/")
    page = response.content.decode()
    assert response.status_code == 200 and "<html" in page
    total = Puzzle.objects.filter(is_current=True).count()
    assert total >= len(SEED_PUZZLES)
    assert f"<strong>{total}</strong> puzzle" in page
    shown = names(response)
    assert len(shown) == min(total, 50) and shown <= {seed.name for seed in SEED_PUZZLES}
    # a row: linked name, answer type, the first line of sat, status, version (newest first)
    newest = Puzzle.objects.get(name=SEED_PUZZLES[-1].name)
    first_line = escape(newest.sat.split("\n")[0])
    assert f'<a href="/puzzles/{newest.pk}/">{newest.name}</a>' in page and f"<code>{first_line}</code>" in page
    assert 'data-testid="status">solved<' in page and "v1" in page
    assert SEED.name in names(plain.get("/puzzles/", {"sort": "old"}))
    # htmx (the filter form) gets only the results
    partial = plain.get("/puzzles/", **HTMX).content.decode()
    assert "<html" not in partial and ROW in partial


def test_each_filter_filters(plain):
    make("gen-easy", status=Puzzle.Status.SOLVED, difficulty=0.9, model_attempts=10, model_passed=9)
    make("gen-hard", status=Puzzle.Status.SOLVED, difficulty=0.1, model_attempts=10, model_passed=1,
         review_state="approve", review_count=1)
    make("gen-unsolved", status=Puzzle.Status.UNSOLVED, difficulty=0.0, model_attempts=4, review_state="flag",
         review_count=2)
    make("p3-held-out", source=Puzzle.Source.P3_TEST, split=Puzzle.Split.TEST, status=Puzzle.Status.UNVERIFIED,
         review_state="reject", review_count=1)
    ours = {"gen-easy", "gen-hard", "gen-unsolved", "p3-held-out"}

    def listed(**query):
        response = plain.get("/puzzles/", query, **HTMX)
        assert response.status_code == 200
        return names(response)

    assert listed(source="generated") == {"gen-easy", "gen-hard", "gen-unsolved"}
    assert SEED.name in listed(source="seed", sort="old") and not listed(source="seed") & ours
    assert listed(split="test") == {"p3-held-out"}
    assert listed(status="unsolved") == {"gen-unsolved"}
    assert listed(status="unverified") == {"p3-held-out"}
    assert SEED.name in listed(status="solved", sort="old") and "gen-unsolved" not in listed(status="solved")
    assert listed(review="approve") == {"gen-hard"}
    assert listed(review="reject") == {"p3-held-out"}
    assert listed(review="flag") == {"gen-unsolved"}
    assert listed(review="any") == {"gen-hard", "gen-unsolved", "p3-held-out"}
    assert not listed(review="none") & {"gen-hard", "gen-unsolved", "p3-held-out"} and "gen-easy" in listed(review="none")
    # difficulty is the models' solve rate: as 0..1, as a percentage, or with a % sign
    assert listed(min_difficulty="0.5") == {"gen-easy"}
    assert listed(min_difficulty="50") == {"gen-easy"}
    assert listed(max_difficulty="20%") == {"gen-hard", "gen-unsolved"}
    assert listed(min_difficulty="0.05", max_difficulty="0.5") == {"gen-hard"}
    assert listed(min_difficulty="nonsense", source="generated") == {"gen-easy", "gen-hard", "gen-unsolved"}
    # sorts
    page = plain.get("/puzzles/", {"source": "generated", "sort": "hard"}, **HTMX).content.decode()
    assert page.index("gen-unsolved") < page.index("gen-hard") < page.index("gen-easy")
    page = plain.get("/puzzles/", {"source": "generated", "sort": "easy"}, **HTMX).content.decode()
    assert page.index("gen-easy") < page.index("gen-hard") < page.index("gen-unsolved")
    # a run's puzzles
    run = GenerationRun.objects.create(config={"batches": 1})
    Puzzle.objects.filter(name="gen-hard").update(generation_run=run)
    assert listed(run=str(run.pk)) == {"gen-hard"}
    # the count says how many match
    assert "<strong>3</strong> puzzles match the filters" in plain.get("/puzzles/", {"source": "generated"}).content.decode()
    # the form shows the filters it applied
    page = plain.get("/puzzles/", {"source": "generated", "max_difficulty": "20%"}).content.decode()
    assert '<option value="generated" selected>' in page and 'name="max_difficulty" value="0.2"' in page


def test_search_finds_puzzles_by_their_code(plain):
    make("needle", sat="def sat(s: str) -> bool:\n    return s.count('zebra_crossing') == 3")
    assert names(plain.get("/puzzles/", {"q": "zebra_crossing"}, **HTMX)) == {"needle"}
    seed_text = "n ** 3 % 1000 == tail"  # inside the first seed's sat
    assert SEED.name in names(plain.get("/puzzles/", {"q": seed_text}, **HTMX))
    response = plain.get("/puzzles/", {"q": "no-such-text-anywhere"}, **HTMX)
    assert names(response) == set() and "No puzzle matches these filters." in response.content.decode()


def test_pagination_keeps_the_filters(plain):
    for i in range(60):
        make(f"bulk-{i:02d}", status=Puzzle.Status.UNSOLVED, difficulty=0.0)
    first = plain.get("/puzzles/", {"status": "unsolved", "sort": "name"}).content.decode()
    assert first.count(ROW) == 50 and "Page 1 of 2" in first
    assert 'href="/puzzles/?status=unsolved&amp;sort=name&amp;page=2"' in first
    second = plain.get("/puzzles/", {"status": "unsolved", "sort": "name", "page": "2"}, **HTMX)
    assert second.content.decode().count(ROW) == 10
    assert names(second) == {f"bulk-{i}" for i in range(50, 60)}
    assert 'href="/puzzles/?status=unsolved&amp;sort=name&amp;page=1"' in second.content.decode()


# --- reviews ---------------------------------------------------------------------------------------
def test_a_reviewer_approves_rejects_and_flags(reviewer, reviewer_user):
    puzzle = seed_puzzle()
    url = f"/puzzles/{puzzle.pk}/review/"
    response = reviewer.post(url, {"verdict": "approve", "comment": "Clear and fair."}, **HTMX)
    assert response.status_code == 200
    panel = response.content.decode()
    assert 'id="review-panel"' in panel and "Clear and fair." in panel and ">approved<" in panel
    puzzle.refresh_from_db()
    assert (puzzle.review_state, puzzle.review_count) == ("approve", 1)
    assert Review.objects.get(puzzle=puzzle).user == reviewer_user

    # the list's keyboard review gets the row's review cell back
    cell = reviewer.post(url, {"verdict": "reject", "view": "cell"}, **HTMX)
    assert cell.status_code == 200 and ">rejected<" in cell.content.decode() and "<section" not in cell.content.decode()
    puzzle.refresh_from_db()
    assert (puzzle.review_state, puzzle.review_count) == ("reject", 2)

    # a plain form post goes back to the page
    response = reviewer.post(url, {"verdict": "flag"})
    assert response.status_code == 302 and response["Location"] == f"/puzzles/{puzzle.pk}/"
    puzzle.refresh_from_db()
    assert (puzzle.review_state, puzzle.review_count) == ("flag", 3)
    assert list(Review.objects.filter(puzzle=puzzle).values_list("verdict", flat=True)) == ["flag", "reject", "approve"]
    page = reviewer.get(f"/puzzles/{puzzle.pk}/").content.decode()
    assert page.count('data-testid="review"') == 3 and "Clear and fair." in page

    # flagging one attempt: it leaves the kept solutions; the puzzle's own state is unchanged
    attempt = puzzle.attempts.get()
    assert attempt.kept
    response = reviewer.post(url, {"verdict": "flag", "attempt": attempt.pk}, **HTMX)
    assert response.status_code == 200
    body = response.content.decode()
    assert f'id="attempt-{attempt.pk}" data-testid="attempt" hx-swap-oob="true"' in body
    assert 'data-testid="attempt-flagged"' in body
    attempt.refresh_from_db()
    puzzle.refresh_from_db()
    assert not attempt.kept and puzzle.review_state == "flag" and puzzle.review_count == 4
    assert Review.objects.filter(attempt=attempt, verdict="flag").count() == 1

    # bad input is refused, nothing saved
    assert reviewer.post(url, {"verdict": "love"}, **HTMX).status_code == 400
    assert reviewer.post(url, {"verdict": "flag", "attempt": "x"}, **HTMX).status_code == 400
    other = make("other")
    other_attempt = Attempt.objects.create(puzzle=other, code="def sol(): return 1", status="failed")
    assert reviewer.post(url, {"verdict": "flag", "attempt": other_attempt.pk}, **HTMX).status_code == 404
    assert Review.objects.filter(puzzle=puzzle).count() == 4


def test_a_user_without_the_role_cannot_review(plain):
    puzzle = seed_puzzle()
    url = f"/puzzles/{puzzle.pk}/review/"
    response = plain.post(url, {"verdict": "approve"}, **HTMX)
    assert response.status_code == 403 and "Only reviewers" in response.content.decode()
    response = plain.post(url, {"verdict": "reject", "view": "cell"}, **HTMX)
    assert response.status_code == 403
    response = plain.post(url, {"verdict": "flag"})
    assert response.status_code == 403 and "Only reviewers can review or edit puzzles" in response.content.decode()
    assert '<a href="/puzzles/">Back to the puzzles</a>' in response.content.decode()
    response = plain.post(url, {"verdict": "flag", "attempt": puzzle.attempts.get().pk}, **HTMX)
    assert response.status_code == 403
    puzzle.refresh_from_db()
    assert (puzzle.review_state, puzzle.review_count) == ("", 0) and not Review.objects.exists()
    assert puzzle.attempts.get().kept
    # the page offers them no review buttons, the list no review shortcuts
    page = plain.get(f"/puzzles/{puzzle.pk}/").content.decode()
    assert 'value="approve"' not in page and "Approving, rejecting and flagging are for reviewers." in page
    assert 'data-reviewer="0"' in plain.get("/puzzles/").content.decode()


# --- edits -----------------------------------------------------------------------------------------
def test_an_edit_is_a_new_version_and_the_old_one_leaves_the_list(reviewer, plain):
    puzzle = seed_puzzle()
    new_sat = "def sat(n: int, tail=888) -> bool:\n    return n > 10 and n ** 3 % 1000 == tail"
    response = reviewer.post(f"/puzzles/{puzzle.pk}/edit/", {"sat": new_sat, "description": "Bigger than 10."})
    new = Puzzle.objects.get(previous=puzzle)
    assert response.status_code == 302 and response["Location"] == f"/puzzles/{new.pk}/"
    puzzle.refresh_from_db()
    assert new.version == 2 and new.is_current and not puzzle.is_current and new.status == "unverified"
    assert new.description == "Bigger than 10." and new.sat == new_sat
    page = reviewer.get(response["Location"]).content.decode()
    assert "Saved as version 2" in page and "verified again" in page
    assert f'href="/puzzles/{puzzle.pk}/">v1</a>' in page and "<strong>v2</strong>" in page
    assert "Edit this puzzle" in page  # the current version can be edited again
    listed = plain.get("/puzzles/", {"q": "tail"}, **HTMX).content.decode()
    assert f'data-puzzle="{new.pk}"' in listed and f'data-puzzle="{puzzle.pk}"' not in listed
    old = plain.get(f"/puzzles/{puzzle.pk}/").content.decode()
    assert 'data-testid="old-version"' in old and f'href="/puzzles/{new.pk}/">Go to the current version (v2)' in old
    assert "Edit this puzzle" not in old
    # an old version cannot be edited
    response = reviewer.post(f"/puzzles/{puzzle.pk}/edit/", {"sat": new_sat})
    assert response.status_code == 400 and "old version" in response.content.decode()


def test_an_edit_keeps_the_source_as_typed(reviewer):
    puzzle = seed_puzzle()
    typed = ('def sat(n: int, tail=888) -> bool:\n    """A cube ending in 888."""\n'
             '    # the last three digits\n    return n ** 3 % 1000 == tail  # e.g. 192\n')
    reviewer.post(f"/puzzles/{puzzle.pk}/edit/", {"sat": typed.replace("\n", "\r\n")})
    new = Puzzle.objects.get(previous=puzzle)
    assert new.sat == typed.rstrip()  # docstring, comments and layout kept; only line ends normalised
    renamed = "def f1(n: int) -> bool:\n    # mine\n    return n > 3"  # needs the rename to `sat`
    reviewer.post(f"/puzzles/{new.pk}/edit/", {"sat": renamed})
    assert Puzzle.objects.get(previous=new).sat == "def sat(n: int) -> bool:\n    return n > 3"


def test_a_bad_edit_is_refused_inline_and_keeps_the_input(reviewer, plain):
    puzzle = seed_puzzle()
    broken = "def sat(n: int) -> bool:\n    return n >   # <b>typed</b>"
    response = reviewer.post(f"/puzzles/{puzzle.pk}/edit/", {"sat": broken, "description": "kept too"})
    page = response.content.decode()
    assert response.status_code == 400 and 'data-testid="edit-error"' in page and "Not a P3 puzzle" in page
    assert "return n &gt;   # &lt;b&gt;typed&lt;/b&gt;</textarea>" in page and ">kept too</textarea>" in page
    assert "<details class=\"card edit-card\" id=\"edit\" open>" in page
    assert Puzzle.objects.filter(previous=puzzle).count() == 0
    response = plain.post(f"/puzzles/{puzzle.pk}/edit/", {"sat": puzzle.sat + "  # mine"})
    assert response.status_code == 403 and Puzzle.objects.filter(previous=puzzle).count() == 0


# --- hostile text ----------------------------------------------------------------------------------
def test_hostile_text_is_escaped_everywhere(reviewer, reviewer_user):
    payload = "<script>alert('xss')</script><img src=x onerror=alert(1)>"
    puzzle = Puzzle.objects.create(
        name=f"evil {payload}", sat=f'def sat(s: str) -> bool:\n    return s == "{payload}"', fingerprint="evil",
        source="user", answer_type=f"str{payload}", description=f"Describe {payload}", model_name=f"model {payload}",
        sampling={"note": payload})
    Attempt.objects.create(puzzle=puzzle, origin="model", code=f'def sol():\n    return "{payload}"', status="passed",
                           kept=True, verdict={"status": "passed", "detail": payload}, style="<script>x</script>")
    response = reviewer.post(f"/puzzles/{puzzle.pk}/review/", {"verdict": "flag", "comment": f"Bad {payload}"}, **HTMX)
    pages = [response.content.decode(), reviewer.get(f"/puzzles/{puzzle.pk}/").content.decode(),
             reviewer.get("/puzzles/", {"q": "alert"}).content.decode()]
    for page in pages:
        assert "<script>alert" not in page and "<img src=x" not in page and "onerror=alert(1)>" not in page
        assert "&lt;script&gt;" in page
    detail = pages[1]
    for text in ("Describe &lt;script&gt;", "model &lt;script&gt;", "Bad &lt;script&gt;"):
        assert text in detail
    # in an edit the typed text comes back escaped too
    response = reviewer.post(f"/puzzles/{puzzle.pk}/edit/", {"sat": payload})
    assert response.status_code == 400 and "<script>alert" not in response.content.decode()


# --- discuss with the model ------------------------------------------------------------------------
def test_discussing_a_test_split_puzzle_is_refused(plain, monkeypatch):
    from webapp.puzzles import views

    opened = []
    monkeypatch.setattr(views.user_turns, "open_conversation", lambda *a, **k: opened.append((a, k)))
    held_out = make("held-out", source=Puzzle.Source.P3_TEST, split=Puzzle.Split.TEST)
    response = plain.post(f"/puzzles/{held_out.pk}/discuss/")
    page = response.content.decode()
    assert response.status_code == 400 and 'data-testid="discuss-error"' in page
    assert "kept for evaluation only" in page and "becomes training data" in page
    response = plain.post(f"/puzzles/{held_out.pk}/discuss/", **HTMX)
    assert response.status_code == 400 and "validation-split puzzles" in response.content.decode()
    validation = make("validation", source=Puzzle.Source.P3_VALIDATION, split=Puzzle.Split.VALIDATION)
    assert plain.post(f"/puzzles/{validation.pk}/discuss/").status_code == 400 and not opened
    assert opened == [] and not Conversation.objects.exists()
    page = plain.get(f"/puzzles/{held_out.pk}/").content.decode()
    assert 'data-testid="discuss-note"' in page


def test_discussing_opens_a_chat_or_says_why_not(plain, monkeypatch):
    from webapp.puzzles import views
    from webapp.refusals import Unavailable

    puzzle = seed_puzzle()
    calls = []

    def opened(user, kind, **fields):
        calls.append((kind, fields))
        return Conversation.objects.create(owner=user, kind=kind, sat=fields["sat"], title=fields["title"]), None

    monkeypatch.setattr(views.user_turns, "open_conversation", opened)
    response = plain.post(f"/puzzles/{puzzle.pk}/discuss/")
    conversation = Conversation.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/chat/{conversation.pk}/"
    assert calls == [("puzzle", {"sat": puzzle.sat, "title": f"Puzzle: {puzzle.name}"})]

    def down(*args, **kwargs):
        raise Unavailable("the model worker is not running, so nothing was sent")

    monkeypatch.setattr(views.user_turns, "open_conversation", down)
    response = plain.post(f"/puzzles/{puzzle.pk}/discuss/")
    assert response.status_code == 503 and "The model worker is not running" in response.content.decode()


# --- solve it yourself -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def verify_worker(django_db_setup, django_db_blocker, redis_url):
    with django_db_blocker.unblock():
        db = connection.settings_dict
        database_url = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    proc, _ = start_worker("verify-pages", "verify,default", "solo", {"DATABASE_URL": database_url})
    yield database_url
    stop_worker(proc)


def test_solve_it_yourself_wrong_then_right(verify_worker, plain):
    puzzle = seed_puzzle()
    page = plain.get(f"/puzzles/{puzzle.pk}/").content.decode()
    assert ">def sol(tail=888):\n    return </textarea>" in page  # the header with the extra parameters

    url = f"/puzzles/{puzzle.pk}/solve/"
    wrong = plain.post(url, {"code": "def sol(tail=888):\n    return 2"}, **HTMX)
    body = wrong.content.decode()
    assert wrong.status_code == 200 and 'data-testid="solve-verdict" data-status="failed"' in body
    assert "Not solved." in body and 'id="attempts" aria-labelledby="attempts-title" hx-swap-oob="true"' in body

    right = plain.post(url, {"code": SEED.sol}, **HTMX)
    body = right.content.decode()
    assert right.status_code == 200 and 'data-status="passed"' in body and "Solved." in body
    attempts = list(puzzle.attempts.filter(origin="user").order_by("id"))
    assert [a.status for a in attempts] == ["failed", "passed"]
    puzzle.refresh_from_db()
    assert puzzle.status == "solved"

    # without JavaScript: the page again, with the verdict and the code as typed
    response = plain.post(url, {"code": "def sol(tail=888):\n    return -1"})
    page = response.content.decode()
    assert response.status_code == 200 and 'data-status="failed"' in page and "return -1</textarea>" in page

    # refusals: nothing to check
    response = plain.post(url, {"code": "   "}, **HTMX)
    assert response.status_code == 400 and "Write a function first" in response.content.decode()
    response = plain.post(url, {"code": ""})
    assert response.status_code == 400 and "Write a function first" in response.content.decode()
    assert puzzle.attempts.filter(origin="user").count() == 3


def test_solve_it_yourself_without_a_verify_worker_says_so(plain, monkeypatch):
    def no_answer(jobs):
        raise CeleryTimeoutError("The operation timed out.")

    monkeypatch.setattr(solving, "_verify_on_worker", no_answer)
    puzzle = seed_puzzle()
    response = plain.post(f"/puzzles/{puzzle.pk}/solve/", {"code": SEED.sol}, **HTMX)
    assert response.status_code == 503 and "No verify worker answered within 30 s" in response.content.decode()
    response = plain.post(f"/puzzles/{puzzle.pk}/solve/", {"code": SEED.sol})
    page = response.content.decode()
    assert response.status_code == 503 and "No verify worker answered" in page and "return n</textarea>" in page
    assert not puzzle.attempts.filter(origin="user").exists()


# --- generation runs -------------------------------------------------------------------------------
FAST_RUN = {"batches": "1", "puzzles_per_prompt": "2", "attempts": "1", "generation_temperature": "0.9",
            "solving_temperature": "0.8", "generation_tokens": "24", "solving_tokens": "16", "context_tokens": "384",
            "style": "completion", "seed": "3"}


def test_only_trainers_start_runs(reviewer, trainer):
    page = reviewer.get("/puzzles/generate/").content.decode()
    assert 'data-testid="trainers-only"' in page and 'name="batches"' not in page
    response = reviewer.post("/puzzles/generate/", FAST_RUN)
    assert response.status_code == 403 and "Only trainers" in response.content.decode()
    assert reviewer.post("/puzzles/generate/", {**FAST_RUN, "batches": "0"}, **HTMX).status_code == 403
    assert not GenerationRun.objects.exists()

    page = trainer.get("/puzzles/generate/").content.decode()
    assert 'name="batches" value="4"' in page and 'name="solving_temperature" value="0.8"' in page  # the defaults
    assert '<option value="chat-prefill">' in page and '<option value="pair" selected>' in page  # the default form
    # bad settings are refused inline, with what was typed
    for change, message in (({"batches": "0"}, "Budget (batches) must be at least 1"),
                            ({"generation_tokens": "5000"}, "Generation context tokens must leave room"),
                            ({"attempts": "many"}, "Attempts per puzzle must be a whole number"),
                            ({"solving_temperature": "7"}, "Temperatures must be between 0 and 2"),
                            ({"style": "poetry"}, "Unknown prompt style &#x27;poetry&#x27;"),
                            ({"form": "sonnet"}, "Unknown puzzle-writing form &#x27;sonnet&#x27;"),
                            ({"seed": ""}, "Seed is empty")):
        response = trainer.post("/puzzles/generate/", {**FAST_RUN, **change})
        page = response.content.decode()
        assert response.status_code == 400 and message in page, (change, page[:200])
        assert 'data-testid="run-error"' in page
    assert 'name="attempts" value="many"' in trainer.post("/puzzles/generate/", {**FAST_RUN, "attempts": "many"}).content.decode()
    assert not GenerationRun.objects.exists()

    response = trainer.post("/puzzles/generate/", FAST_RUN)
    run = GenerationRun.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/puzzles/runs/{run.pk}/"
    assert run.status == "queued" and run.config["batches"] == 1 and run.config["context_tokens"] == 384
    assert run.config["form"] == "pair"  # not sent: the default
    # one run at a time
    response = trainer.post("/puzzles/generate/", FAST_RUN)
    assert response.status_code == 400 and f"Generation run {run.pk} is still queued" in response.content.decode()

    # the run page polls while the run is active; a reviewer may watch but not cancel
    page = reviewer.get(f"/puzzles/runs/{run.pk}/").content.decode()
    assert 'hx-trigger="every 2s"' in page and 'data-testid="run-progress"' in page and ">Cancel<" not in page
    assert f'href="/puzzles/?run={run.pk}"' in page
    assert reviewer.post(f"/puzzles/runs/{run.pk}/cancel/").status_code == 403
    assert reviewer.post(f"/puzzles/runs/{run.pk}/resume/").status_code == 403
    page = trainer.get(f"/puzzles/runs/{run.pk}/").content.decode()
    assert ">Cancel<" in page and ">Resume<" not in page
    response = trainer.post(f"/puzzles/runs/{run.pk}/cancel/", **HTMX)
    run.refresh_from_db()
    assert response.status_code == 200 and run.status == "cancelled"
    panel = response.content.decode()
    assert "every 2s" not in panel and ">Resume<" in panel and ">Cancel<" not in panel
    # the list of runs
    page = reviewer.get("/puzzles/generate/").content.decode()
    assert page.count('data-testid="run-row"') == 1 and "cancelled" in page
    # resume puts it back in the queue (no worker here: it stays queued)
    response = trainer.post(f"/puzzles/runs/{run.pk}/resume/")
    run.refresh_from_db()
    assert response.status_code == 302 and run.status == "queued"
    response = trainer.post(f"/puzzles/runs/{run.pk}/resume/")
    assert response.status_code == 400 and "The run is still going" in response.content.decode()
    trainer.post(f"/puzzles/runs/{run.pk}/cancel/")


@pytest.fixture(scope="module")
def run_workers(verify_worker, tmp_path_factory):
    """A model worker with a tiny random model beside the verify worker, on pytest's database."""
    from engine.lm.tiny import build_tiny_model

    env = {"DATABASE_URL": verify_worker, "AUTODIDACT_MODEL": str(build_tiny_model(tmp_path_factory.mktemp("tiny"))),
           "AUTODIDACT_PRELOAD_MODEL": "1"}
    proc, _ = start_worker("gpu-pages", "gpu", "solo", env)
    yield
    stop_worker(proc)


@pytest.mark.django_db(transaction=True)
def test_a_generation_run_goes_from_the_form_to_its_finished_page(run_workers):
    trainer = _client(_user("tina", "trainer"))
    response = trainer.post("/puzzles/generate/", FAST_RUN)
    assert response.status_code == 302
    run = GenerationRun.objects.get()
    deadline = time.monotonic() + 45
    while GenerationRun.objects.get(pk=run.pk).is_active and time.monotonic() < deadline:
        time.sleep(0.2)
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    panel = trainer.get(f"/puzzles/runs/{run.pk}/progress/").content.decode()
    assert "hx-trigger" not in panel  # finished: the page stops polling
    assert 'data-status="succeeded"' in panel and 'value="100"' in panel and "1 of 1 batches done" in panel
    assert re.search(r'data-testid="count-generated">\s*<td[^>]*>generate</td>\s*<td>Generated</td><td class="num">2<', panel)
    assert 'data-testid="timing-generate"' in panel and "Tokens/s" in panel
    page = trainer.get(f"/puzzles/runs/{run.pk}/").content.decode()
    assert "Settings" in page and "<code>384</code>" in page
