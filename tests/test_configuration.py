"""Configuration comes from the environment only; embedded vs server mode follows REDIS_URL."""
import json
import stat
import subprocess
import sys

import pytest

from tests.support import ROOT, embedded_env
from webapp.configuration import ConfigurationError, env_bool, load_or_create_secret_key

PROBE = """
import json, django
django.setup()
from django.conf import settings
from webapp.celery_app import app
print(json.dumps({
    "db": settings.DATABASES["default"]["ENGINE"],
    "db_name": str(settings.DATABASES["default"]["NAME"]),
    "layer": settings.CHANNEL_LAYERS["default"]["BACKEND"],
    "cache": settings.CACHES["default"]["BACKEND"],
    "broker": app.conf.broker_url,
    "serializer": [app.conf.task_serializer, list(app.conf.accept_content)],
    "acks_late": app.conf.task_acks_late, "prefetch": app.conf.worker_prefetch_multiplier,
    "debug": settings.DEBUG, "hosts": settings.ALLOWED_HOSTS, "embedded": settings.EMBEDDED,
}))
"""


def settings_under(env: dict) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env={**env, "DJANGO_SETTINGS_MODULE": "webapp.settings"},
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_embedded_defaults(tmp_path):
    seen = settings_under(embedded_env(tmp_path))
    assert seen["embedded"] is True
    assert seen["db"] == "django.db.backends.sqlite3" and seen["db_name"].startswith(str(tmp_path))
    assert seen["layer"] == "webapp.core.layers.ThreadSafeInMemoryChannelLayer"
    assert seen["broker"].startswith("memory://")
    assert seen["debug"] is False and "localhost" in seen["hosts"]
    assert seen["serializer"] == ["json", ["json"]] and seen["acks_late"] is True and seen["prefetch"] == 1


def test_server_mode_from_environment(tmp_path):
    env = embedded_env(tmp_path, REDIS_URL="redis://127.0.0.1:6379/9",
                       DATABASE_URL="postgres://postgres@127.0.0.1:5432/test", ALLOWED_HOSTS="a.example,b.example")
    seen = settings_under(env)
    assert seen["embedded"] is False
    assert seen["db"] == "django.db.backends.postgresql"
    assert seen["layer"] == "channels_redis.core.RedisChannelLayer"
    assert seen["cache"] == "django.core.cache.backends.redis.RedisCache"
    assert seen["broker"] == "redis://127.0.0.1:6379/9"
    assert seen["hosts"] == ["a.example", "b.example"]


def test_bad_boolean_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("DEBUG", "maybe")
    with pytest.raises(ConfigurationError, match="DEBUG='maybe' is not a boolean"):
        env_bool("DEBUG", False)
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True,
                         env={**embedded_env(tmp_path), "DEBUG": "maybe", "DJANGO_SETTINGS_MODULE": "webapp.settings"})
    assert out.returncode != 0 and "not a boolean" in out.stderr


def test_secret_key_is_generated_once_and_private(tmp_path):
    path = tmp_path / "secret_key"
    first = load_or_create_secret_key(path)
    assert len(first) >= 50
    assert load_or_create_secret_key(path) == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
