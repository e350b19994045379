"""`make test` on a machine whose PostgreSQL and Redis are not running: throwaway ones start for the
run, answer, and are gone afterwards."""
import os

from tests.services import ThrowawayPostgres, ThrowawayRedis, postgres_answers, redis_answers


def test_throwaway_postgres_and_redis_start_answer_and_stop():
    postgres, redis_server = ThrowawayPostgres().start(), ThrowawayRedis().start()
    try:
        assert postgres_answers(postgres.url) and redis_answers(redis_server.url)
        assert postgres.url.endswith("/test") and str(postgres.port) in postgres.url
    finally:
        postgres.stop()
        redis_server.stop()
    assert not postgres_answers(postgres.url) and not redis_answers(redis_server.url)
    assert not os.path.exists(postgres.folder)
