"""Reading configuration from the environment, so no deployment ever edits code."""
from __future__ import annotations

import os
import secrets
from pathlib import Path

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}


class ConfigurationError(RuntimeError):
    """An environment variable holds a value the site cannot run with."""


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ConfigurationError(f"{name}={raw!r} is not a boolean (use 1/0, true/false, yes/no, on/off)")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r} is not an integer") from None


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return list(default)
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    if raw.strip() not in choices:
        raise ConfigurationError(f"{name}={raw!r} is not one of: {', '.join(choices)}")
    return raw.strip()


def data_dir(base_dir: Path) -> Path:
    """The folder for the database, secret key, checkpoints and logs (created on first use)."""
    path = Path(os.environ.get("AUTODIDACT_DATA_DIR") or base_dir / "var").expanduser().resolve()
    for sub in ("", "logs", "checkpoints", "static"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    return path


def model_store_location(data_dir: Path) -> str:
    """AUTODIDACT_MODEL_STORE: a folder (made absolute) or an fsspec URL whose protocol works here;
    unset, the data dir's models/ folder, where a single host has always kept its versions."""
    raw = os.environ.get("AUTODIDACT_MODEL_STORE", "").strip()
    if not raw:
        return str(data_dir / "models")
    from engine.lm.model_store import check_location, is_url

    if not is_url(raw):
        return str(Path(raw).expanduser().resolve())
    problem = check_location(raw)
    if problem:
        raise ConfigurationError(f"AUTODIDACT_MODEL_STORE={raw!r}: {problem}")
    return raw


def load_or_create_secret_key(path: Path) -> str:
    """Keep one generated key per data dir: sessions survive restarts and nothing is committed."""
    try:
        key = path.read_text().strip()
        if key:
            return key
    except FileNotFoundError:
        pass
    key = secrets.token_urlsafe(50)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    try:
        # Two processes starting at once must agree on one key: the first link wins.
        os.link(tmp, path)
    except FileExistsError:
        key = path.read_text().strip()
    finally:
        tmp.unlink(missing_ok=True)
    return key


def redis_layer_host(url: str) -> dict:
    """Connection options for the Redis channel layer.

    channels_redis blocks 5 s per BZPOPMIN; redis-py 8 times socket reads out after 5 s by default,
    so an idle consumer's receive could fail and the socket go deaf: hence the 30 s read timeout.
    After a Redis restart every pooled connection is dead; a health check (a PING before using a
    connection idle for over a second) and a few quick retries replace them, so the next socket
    connects instead of failing on a stale connection."""
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    return {"address": url, "socket_timeout": 30, "socket_connect_timeout": 5, "health_check_interval": 1,
            "retry": Retry(ExponentialBackoff(cap=2.0, base=0.1), 5),
            "retry_on_error": [RedisConnectionError, RedisTimeoutError]}
