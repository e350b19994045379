"""The puzzle list page at 100,000 puzzles against the same page at 1,000, on PostgreSQL.

Both tables are built in one run, in a scratch database (created and dropped here), and each
list URL (filters, sorts, a deep page, a text search) is fetched through Django's test client,
signed in, best of 5. Prints milliseconds for each size and the ratio: a list that scaled with
the table would show ~100x; an indexed one stays near 1x.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test python benchmarks/puzzle_list_bench.py
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

URLS = ["/puzzles/", "/puzzles/?source=generated", "/puzzles/?status=solved&sort=hard",
        "/puzzles/?min_difficulty=0.2&max_difficulty=0.4", "/puzzles/?review=flag", "/puzzles/?q=range",
        "/puzzles/?page=900"]


def timed(client, url: str, repeats: int = 5) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        response = client.get(url)
        best = min(best, time.perf_counter() - started)
        assert response.status_code == 200, (url, response.status_code)
    return best * 1000


def main() -> int:
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        print("set DATABASE_URL to a PostgreSQL server (the scratch database is created beside it)")
        return 2
    import django
    from django.test.utils import setup_test_environment

    django.setup()
    setup_test_environment()
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client

    from tests.test_puzzle_list_scale import make_puzzles
    from webapp.puzzles.models import Puzzle

    creation = connection.creation
    old_name = settings.DATABASES["default"]["NAME"]
    creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    try:
        client = Client()
        client.force_login(User.objects.create_user("bench", password="x"))
        results = {}
        for size in (1_000, 100_000):
            Puzzle.objects.filter(name__startswith="bench-").delete()
            started = time.perf_counter()
            Puzzle.objects.bulk_create(make_puzzles(size, "bench"), batch_size=5000)
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE puzzles_puzzle")
            print(f"{size:>7,} puzzles created in {time.perf_counter() - started:.1f} s", file=sys.stderr)
            results[size] = {url: timed(client, url) for url in URLS}
        print(f"{'list URL':52} {'1k ms':>8} {'100k ms':>8} {'ratio':>6}")
        for url in URLS:
            small, large = results[1_000][url], results[100_000][url]
            print(f"{url:52} {small:8.1f} {large:8.1f} {large / small:6.2f}")
    finally:
        creation.destroy_test_db(old_name, verbosity=0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
