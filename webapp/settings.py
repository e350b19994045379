"""Django settings for Autodidact.

Everything a deployment changes comes from the environment (see README, "Configuration").
No REDIS_URL means the embedded mode: SQLite, in-memory channel layer, in-process Celery worker.
"""
from __future__ import annotations

import os
from pathlib import Path

import dj_database_url

from webapp.configuration import (
    ConfigurationError,
    data_dir,
    env_bool,
    env_choice,
    env_int,
    env_list,
    load_or_create_secret_key,
    model_store_location,
    redis_layer_host,
)

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = data_dir(BASE_DIR)

SECRET_KEY = os.environ.get("SECRET_KEY") or load_or_create_secret_key(DATA_DIR / "secret_key")
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

REDIS_URL = os.environ.get("REDIS_URL", "").strip()
EMBEDDED = not REDIS_URL

# The model the workers serve: a Hugging Face id or a local path; empty = packaged SmolLM2-135M-Instruct.
AUTODIDACT_MODEL = os.environ.get("AUTODIDACT_MODEL", "").strip()
# Where training rounds publish sealed model versions for every host to load (webapp/serving/model_store.py):
# a folder (a mount all hosts share) or an fsspec URL (file://, s3://, gs://, ...); unset: DATA_DIR/models.
# A URL store's versions are copied into this host's MODEL_CACHE_DIR, checked, before they load.
AUTODIDACT_MODEL_STORE = model_store_location(DATA_DIR)
MODEL_CACHE_DIR = DATA_DIR / "model-cache"
# The model a new conversation talks to unless the person picks another (webapp/serving/chat_models.py):
# "auto" = Qwen2.5-Coder-0.5B-Instruct when fetched, else the served model; "" = the served model;
# "packaged:NAME" or "version:ID". With AUTODIDACT_MODEL set, chat follows it unless this is set too.
AUTODIDACT_CHAT_MODEL = os.environ.get("AUTODIDACT_CHAT_MODEL", "" if AUTODIDACT_MODEL else "auto").strip()
# The teacher that writes puzzles when a generation run asks for one (webapp/serving/teacher.py): an
# OpenAI-compatible endpoint (vLLM, llama.cpp server, a hosted API). Empty URL: the packaged
# Qwen2.5-Coder GGUF (1.5B where fetched, else 0.5B), served by a llama.cpp server started for it.
# The key is sent to that endpoint only; it is never logged or shown.
AUTODIDACT_TEACHER_URL = os.environ.get("AUTODIDACT_TEACHER_URL", "").strip()
AUTODIDACT_TEACHER_MODEL = os.environ.get("AUTODIDACT_TEACHER_MODEL", "").strip()
AUTODIDACT_TEACHER_KEY = os.environ.get("AUTODIDACT_TEACHER_KEY", "").strip()
AUTODIDACT_TEACHER_PARALLEL = env_int("AUTODIDACT_TEACHER_PARALLEL", 4)
# With no URL: what the local llama.cpp server serves as teacher, "packaged:NAME", "version:ID" (a
# trained version's checked GGUF copy) or a .gguf path; empty = the packaged Qwen2.5-Coder above.
AUTODIDACT_TEACHER_LOCAL = os.environ.get("AUTODIDACT_TEACHER_LOCAL", "").strip()
# Which runtime serves it: auto (llama.cpp for GGUF files on a CPU when installed), transformers, llama.cpp.
AUTODIDACT_BACKEND = os.environ.get("AUTODIDACT_BACKEND", "auto").strip()
# Which checked copy of a quantised GGUF writes and solves puzzles: auto (bf16 where llama.cpp was built
# with bf16 dot products, else f16), f16 or bf16. Evaluations always use f16.
AUTODIDACT_BATCH_WEIGHTS = os.environ.get("AUTODIDACT_BATCH_WEIGHTS", "auto").strip()
# CPU inference precision: "none" (fp32) or "int8" (per-channel; ~3x faster single-stream here).
AUTODIDACT_QUANTIZE = os.environ.get("AUTODIDACT_QUANTIZE", "none").strip()
# Load the model when the model worker starts, so the first request does not wait ~20 s.
AUTODIDACT_PRELOAD_MODEL = env_bool("AUTODIDACT_PRELOAD_MODEL", True)
# Chat: the longest reply, and how many replies each user may ask for ("" = no limit).
AUTODIDACT_CHAT_MAX_TOKENS = env_int("AUTODIDACT_CHAT_MAX_TOKENS", 512)
AUTODIDACT_CHAT_RATE_LIMIT = os.environ.get("AUTODIDACT_CHAT_RATE_LIMIT", "20/minute,500/day")
# The queue chat replies go to: "chat", served by a model worker of its own (Procfile's worker-chat,
# an embedded thread), so a reply never waits behind a generation step or a training round; "gpu"
# for a deployment that runs no chat worker. With "chat" and no chat worker alive, replies still go
# to `gpu` (webapp/serving/model_worker.py: chat_queue).
AUTODIDACT_CHAT_QUEUE = env_choice("AUTODIDACT_CHAT_QUEUE", "chat", ("chat", "gpu"))
# CPU threads each model worker's llama.cpp models decode with (webapp/serving/model_worker.py:
# share_cores). Two models decoding at once with every core each spin-wait on each other: on 2 cores
# 4 tok/s each instead of 85 alone (1 thread each: 42). So where a chat worker runs beside the gpu
# worker, each takes half the cores; a host with one model worker on it sets this to its cores.
# Other processes (command-line evaluations, benchmarks) use every core.
AUTODIDACT_MODEL_THREADS = env_int("AUTODIDACT_MODEL_THREADS", 0) or (
    max(1, (os.cpu_count() or 2) // 2) if AUTODIDACT_CHAT_QUEUE == "chat" else 0)
if AUTODIDACT_MODEL_THREADS < 0:
    raise ConfigurationError(f"AUTODIDACT_MODEL_THREADS={AUTODIDACT_MODEL_THREADS} is below 0")
if "AUTODIDACT_CSP" in os.environ:  # otherwise webapp.core.content_security.DEFAULT_POLICY
    AUTODIDACT_CSP = os.environ["AUTODIDACT_CSP"]
# Where benchmark data (MBPP, P3, EvalPlus) is read from; never copied into the project.
AUTODIDACT_BENCHMARK_DATA = Path(
    os.environ.get("AUTODIDACT_BENCHMARK_DATA") or BASE_DIR.parent / "shared" / "data"
).expanduser()

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "django_htmx",
    "django_celery_beat",
    "webapp.serving",
    "webapp.accounts",
    "webapp.core",
    "webapp.evaluation",
    "webapp.chat",
    "webapp.studies",
    "webapp.distill",
    "webapp.datasets",
    "webapp.puzzles",
    "webapp.training",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "webapp.core.session_end.SignedOutAwareLoginRequired",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "webapp.core.content_security.ContentSecurityPolicyMiddleware",
    "webapp.core.refusal_responses.RefusalMiddleware",
    # Runs before any view hook (the CSRF check reads the body there), with the user and htmx known.
    "webapp.core.refusal_responses.RequestSizeMiddleware",
]

ROOT_URLCONF = "webapp.urls"
ASGI_APPLICATION = "webapp.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "webapp.core.context_processors.navigation",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{DATA_DIR / 'autodidact.sqlite3'}",
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 0),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web threads and in-process workers write concurrently: WAL + immediate transactions
    # turn "database is locked" into a short wait.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Channels and cache ---------------------------------------------------------------------
if EMBEDDED:
    CHANNEL_LAYERS = {"default": {"BACKEND": "webapp.core.layers.ThreadSafeInMemoryChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [redis_layer_host(REDIS_URL)],  # timeouts and reconnection: see there
                "prefix": "autodidact:asgi",
                "capacity": env_int("CHANNEL_CAPACITY", 1000),
                "expiry": 60,
            },
        }
    }
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "autodidact",
        }
    }

# --- Celery (settings read by webapp/celery_app.py, namespace CELERY_) -----------------------
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or REDIS_URL or "memory://localhost/"
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND") or REDIS_URL or "cache+memory://"
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_EXPIRES = 24 * 3600
CELERY_TASK_TRACK_STARTED = True
CELERY_TASK_SEND_SENT_EVENT = True
CELERY_WORKER_SEND_TASK_EVENTS = True
# Long tasks: acknowledge after the work is done, so a killed worker's task is redelivered.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT = float(env_int("CELERY_SOFT_SHUTDOWN_TIMEOUT", 10))
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_DEFAULT_QUEUE = "default"
# Queues: `verify` runs sandboxed checks (CPU, many processes); `gpu` holds the model for long jobs
# (one solo worker per accelerator: CUDA must never be forked); `chat` holds a model for the replies
# a person waits on (a solo worker of its own); `default` is light bookkeeping (`chat.reap_*` too).
CELERY_TASK_ROUTES = {
    "chat.reply": {"queue": AUTODIDACT_CHAT_QUEUE},
    "verify.*": {"queue": "verify"},
    "gpu.*": {"queue": "gpu"},
}
if EMBEDDED:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"polling_interval": 0.05}
else:
    # A task whose worker died unacknowledged goes back to the queue after the visibility
    # timeout; sweep for such tasks a few times per timeout (a cheap sorted-set scan).
    _visibility_timeout = env_int("CELERY_VISIBILITY_TIMEOUT", 3600)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": _visibility_timeout,
        "unacked_restore_interval": min(10, max(1, _visibility_timeout // 3)),
        "unacked_restore_throttle": 1,
    }
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Defaults, copied into the database on first start (then editable in the admin).
CELERY_BEAT_SCHEDULE = {
    "chat-reap-stale-replies": {"task": "chat.reap_stale_replies", "schedule": 10.0},
}
CELERY_TIMEZONE = "UTC"

# --- Auth -----------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

# --- I18N / static --------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "static"
# Serve from the finders: no collectstatic step on a fresh machine, and no CDN anywhere.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

# --- Logging --------------------------------------------------------------------------------
LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO").upper()
# The terminal of `make up` in embedded mode shows warnings only (beat alone logs three lines every
# 10 s); the log file keeps LOG_LEVEL. `manage.py up --verbose` or CONSOLE_LOG_LEVEL shows more.
CONSOLE_LOG_LEVEL = os.environ.get("CONSOLE_LOG_LEVEL", "WARNING" if EMBEDDED else LOG_LEVEL).upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "level": CONSOLE_LOG_LEVEL},
        "file": {
            "class": "logging.handlers.RotatingFileHandler",
            "filename": DATA_DIR / "logs" / "autodidact.log",
            "maxBytes": 10 * 1024 * 1024,
            "backupCount": 3,
            "formatter": "plain",
        },
    },
    "root": {"handlers": ["console", "file"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        "daphne": {"level": "WARNING"},
        "django.channels.server": {"level": "WARNING"},
    },
}
