"""Settings, all read from the environment (django-environ).

Nothing but the defaults is needed to start: SQLite in the project folder,
a local-memory cache and an embedded Celery broker. Set DATABASE_URL,
CACHE_URL and CELERY_BROKER_URL to run on PostgreSQL and Redis/RabbitMQ.
"""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env(
    DEBUG=(bool, False),
    ALLOWED_HOSTS=(list, ["127.0.0.1", "localhost", "testserver"]),
    EVENT_RETENTION_DAYS=(int, 7),
    TOKEN_TTL_SECONDS=(int, 86400),
)
# A .env file is optional; the environment always wins.
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env("DEBUG")
# The fallback key is only good for local runs; production sets SECRET_KEY.
SECRET_KEY = env("SECRET_KEY", default="dev-insecure-receipts-console-key-change-me")
ALLOWED_HOSTS = env("ALLOWED_HOSTS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "apps.common",
    "apps.tenancy",
    "apps.policy",
    "apps.audit",
    "apps.chat",
    "apps.events",
    "apps.receipts",
    "apps.console",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files (API docs assets from drf-spectacular-sidecar, Django admin CSS)
    # served by the app itself, also with DEBUG off: no CDN, no separate web server.
    "apps.common.middleware.StaticFilesMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "apps.common.middleware.ApiErrorEnvelopeMiddleware",
]

ROOT_URLCONF = "receipts_console.urls"
WSGI_APPLICATION = "receipts_console.wsgi.application"
ASGI_APPLICATION = "receipts_console.asgi.application"

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
            ],
        },
    },
]

# --- database
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Concurrent writers (web + worker + long-polls) would otherwise hit
    # "database is locked": take the write lock at BEGIN, wait for it, use WAL.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL;PRAGMA synchronous=NORMAL;",
    }
else:
    # Django's backend with the hot path's costs taken off (apps/common/db_backends/postgresql/base.py).
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        DATABASES["default"]["ENGINE"] = "apps.common.db_backends.postgresql"
    # Health-checked so a restarted PostgreSQL does not leave dead connections behind (with the pool: not
    # for a connection given back cleanly within the last second; without it: Django's check per request).
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    DB_POOL_MAX_SIZE = env.int("DB_POOL_MAX_SIZE", default=20)
    if DB_POOL_MAX_SIZE > 0:
        # A connection pool per process (psycopg_pool): a request takes a connection at its first query and
        # gives it back at its end; a waiting long-poll gives its own back while it waits. Connections are
        # never opened per request (a PostgreSQL connection costs a process fork: measured, reconnecting
        # woken long-polls made wake-up latency swing between 100 ms and 1 s), and PostgreSQL sees at most
        # DB_POOL_MAX_SIZE connections per process however many threads serve requests. A request that
        # finds the pool exhausted waits up to DB_POOL_TIMEOUT_SECONDS, then fails (503 would need a
        # proxy; it is a 500 here, and a sign to raise the size).
        DATABASES["default"]["CONN_MAX_AGE"] = 0
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": env.int("DB_POOL_MIN_SIZE", default=2),
            "max_size": DB_POOL_MAX_SIZE,
            "timeout": env.float("DB_POOL_TIMEOUT_SECONDS", default=10.0),
        }
    else:
        # DB_POOL_MAX_SIZE=0: one persistent connection per thread instead (Django's classic setup).
        DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- cache (policy, plans and token lookups are cached per app)
CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://receipts-console")}
if CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache":
    # The same backend, reusing its Redis client object instead of building one per call (apps/common/cache.py).
    CACHES["default"]["BACKEND"] = "apps.common.cache.RedisCache"

# --- auth
AUTH_PASSWORD_VALIDATORS = []
LOGIN_URL = "/console/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# Serve straight from the apps' static folders: `make run` needs no collectstatic step.
WHITENOISE_USE_FINDERS = True

# --- product settings
EVENT_RETENTION_DAYS = env("EVENT_RETENTION_DAYS")
TOKEN_TTL_SECONDS = env("TOKEN_TTL_SECONDS")
# App-API tokens are served from the cache this long (apps/chat/auth.py); changes that matter invalidate them.
TOKEN_CACHE_SECONDS = env.int("TOKEN_CACHE_SECONDS", default=60)
# Long-poll wake-up across app-server processes (apps/events/wakeup.py, docs/OPERATIONS.md).
# auto: redis when EVENT_WAKEUP_REDIS_URL is set, else postgres (LISTEN/NOTIFY) on PostgreSQL, else local.
EVENT_WAKEUP = env("EVENT_WAKEUP", default="auto")
EVENT_WAKEUP_REDIS_URL = env("EVENT_WAKEUP_REDIS_URL", default="")
# How often a waiting long-poll re-reads the feed anyway (unset: 1 s for local, 15 s otherwise).
EVENT_WAKEUP_RECHECK_SECONDS = env.float("EVENT_WAKEUP_RECHECK_SECONDS", default=None)

# --- security when not in DEBUG
if not DEBUG:
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    CSRF_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=False)
    CSRF_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=False)
    # The console reads no cookie from JavaScript (the CSRF token comes from the form).
    CSRF_COOKIE_HTTPONLY = True
    # A console session lasts a working day, not Django's default two weeks.
    SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=8 * 3600)
    if env.bool("SECURE_COOKIES", default=False):
        # Served over HTTPS only: tell browsers to stay there.
        SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=3600)
X_FRAME_OPTIONS = "DENY"

# --- console sign-in lockout (apps/console/services.py): per username + client address,
# and a looser limit per address alone; counters live in the Django cache.
CONSOLE_LOGIN_MAX_FAILURES = env.int("CONSOLE_LOGIN_MAX_FAILURES", default=5)
CONSOLE_LOGIN_MAX_FAILURES_PER_IP = env.int("CONSOLE_LOGIN_MAX_FAILURES_PER_IP", default=50)
CONSOLE_LOGIN_LOCKOUT_SECONDS = env.int("CONSOLE_LOGIN_LOCKOUT_SECONDS", default=15 * 60)

# --- Django REST framework
REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["apps.common.renderers.SafeJSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["apps.common.parsers.SafeJSONParser"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "apps.common.negotiation.JsonOnlyNegotiation",
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "EXCEPTION_HANDLER": "apps.common.exceptions.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "receipts_console API",
    "DESCRIPTION": "Message receipts for an IM platform: admin API for staff, app API for customers.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    # Swagger UI assets are served from the sidecar package: no CDN needed.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "apps.common.schema.add_request_line_limit_response",
        "apps.common.schema.forbid_unknown_fields_in_patch_bodies",
        "apps.common.schema.drop_redundant_blank_alternatives",
    ],
}

# --- Celery (SPEC §6). Without a broker URL the embedded broker is used: files
# under var/broker, written atomically (apps/common/celery_transport.py), so
# `make run` needs no Redis. Set CELERY_BROKER_URL=redis://… or amqp://… in production.
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="atomicfs://localhost//")
# The embedded broker's folders (created on first use); tests point it at a temporary folder.
CELERY_BROKER_FOLDER = Path(env("CELERY_BROKER_FOLDER", default=str(VAR_DIR / "broker")))
CELERY_BROKER_TRANSPORT_OPTIONS = (
    {
        # One folder for both directions: producer and consumer live on this machine.
        "data_folder_in": str(CELERY_BROKER_FOLDER / "queue"),
        "data_folder_out": str(CELERY_BROKER_FOLDER / "queue"),
        # Consumers claim a message by renaming it in here: same filesystem as the queue.
        "processed_folder": str(CELERY_BROKER_FOLDER / "processed"),
        "control_folder": str(CELERY_BROKER_FOLDER / "control"),
        "store_processed": False,
        "polling_interval": 0.2,
    }
    if CELERY_BROKER_URL.split("://", 1)[0] in ("atomicfs", "filesystem")
    else {}
)
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"
# Purges (SPEC §6): how often beat sends them, how many rows one short
# transaction deletes, and how long one run may take before it stops
# (soft limit: the current batch rolls back, the next run goes on) or is killed (hard limit).
PURGE_INTERVAL_SECONDS = env.int("PURGE_INTERVAL_SECONDS", default=600)
PURGE_BATCH_SIZE = env.int("PURGE_BATCH_SIZE", default=1000)
PURGE_SOFT_TIME_LIMIT_SECONDS = env.int("PURGE_SOFT_TIME_LIMIT_SECONDS", default=540)
PURGE_TIME_LIMIT_SECONDS = PURGE_SOFT_TIME_LIMIT_SECONDS + 60
CELERY_BEAT_SCHEDULE = {
    "purge-expired-group-acks": {
        "task": "receipts.purge_expired_group_acks",
        "schedule": PURGE_INTERVAL_SECONDS,
        # A run that waited a whole interval in the queue (worker down) is dropped: the next one does the work.
        "options": {"expires": PURGE_INTERVAL_SECONDS},
    },
    "purge-expired-events": {
        "task": "events.purge_expired_events",
        "schedule": PURGE_INTERVAL_SECONDS,
        "options": {"expires": PURGE_INTERVAL_SECONDS},
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}
