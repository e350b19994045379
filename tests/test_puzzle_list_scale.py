"""The puzzle list at 100,000 puzzles on PostgreSQL: every filter, sort and a deep page answer
with a bounded number of queries (no per-row queries). Timings are printed, not asserted
(benchmarks/puzzle_list_bench.py measures them against a small table)."""
import random
import time

import pytest
from django.contrib.auth.models import User
from django.test import Client

from webapp.puzzles.models import Puzzle

ROWS = 100_000
MAX_QUERIES = 8  # session, user, count, page (and a few for the page's chrome), never one per row
QUERIES = ["", "?source=generated", "?status=solved&sort=hard", "?split=test&sort=easy",
           "?min_difficulty=0.2&max_difficulty=0.4", "?review=flag", "?review=none&sort=attempts",
           "?q=range", "?source=generated&status=unsolved&q=str(x)&sort=old", "?page=1500", "?sort=name&page=999"]


def make_puzzles(count: int, prefix: str = "scale") -> list[Puzzle]:
    rng = random.Random(0)
    sources = ["generated"] * 6 + ["p3-train", "p3-test", "user", "seed"]
    statuses = ["solved", "unsolved", "unverified", "rejected"]
    reviews = ["", "", "", "", "approve", "reject", "flag"]
    tails = ["len(str(x)) > 3", "x in range(n)", "str(x) == 'ab' * 3"]
    rows = []
    for i in range(count):
        source = rng.choice(sources)
        review = rng.choice(reviews)
        rows.append(Puzzle(
            name=f"{prefix}-{i}", sat=f"def sat(x: int, n={i}):\n    return x * {rng.randint(2, 9)} == n and "
                                      f"{rng.choice(tails)}",
            answer_type="int", fingerprint=f"{prefix}{i:027d}", source=source,
            split="test" if source == "p3-test" else "train", status=rng.choice(statuses),
            difficulty=rng.choice([None, rng.random()]), model_attempts=rng.randint(0, 100),
            review_state=review, review_count=int(bool(review))))
    return rows


@pytest.fixture(scope="module")
def many_puzzles(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        started = time.perf_counter()
        Puzzle.objects.bulk_create(make_puzzles(ROWS), batch_size=5000)
        print(f"\ncreated {ROWS:,} puzzles in {time.perf_counter() - started:.1f} s")
        yield
        Puzzle.objects.filter(name__startswith="scale-").delete()


@pytest.mark.django_db
def test_every_filter_and_sort_is_a_bounded_number_of_queries_at_100k(many_puzzles, django_assert_max_num_queries):
    client = Client()
    client.force_login(User.objects.create_user("lister", password="x"))
    assert Puzzle.objects.filter(is_current=True).count() >= ROWS
    for query in QUERIES:
        started = time.perf_counter()
        with django_assert_max_num_queries(MAX_QUERIES):
            response = client.get("/puzzles/" + query)
        elapsed = (time.perf_counter() - started) * 1000
        assert response.status_code == 200, query
        print(f"{query or '(all)':55} {elapsed:7.1f} ms")
    page = client.get("/puzzles/?source=generated&status=solved").content.decode()
    assert page.count('data-testid="puzzle-row"') == 50
    solved_generated = Puzzle.objects.filter(source="generated", status="solved", is_current=True).count()
    assert f"{solved_generated:,}" in page or str(solved_generated) in page
