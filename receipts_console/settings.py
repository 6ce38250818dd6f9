"""Settings, all read from the environment (django-environ).

Nothing but the defaults is needed to start: SQLite in the project folder,
a local-memory cache and an embedded Celery broker. Set DATABASE_URL,
CACHE_URL and CELERY_BROKER_URL to run on PostgreSQL and Redis/RabbitMQ.
"""

from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

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
    "apps.webhooks",
    "apps.console",
    # Sign-in lockout (SPEC §9): axes' backend, signals, middleware and commands; apps.lockout counts.
    "axes",
    "apps.lockout",
]

MIDDLEWARE = [
    # Before SecurityMiddleware and CSRF: the scheme a trusted TLS-terminating proxy saw (apps/common/clientip.py).
    "apps.common.clientip.TrustedProxySchemeMiddleware",
    # Outermost: request id, request metrics and the request log line (see "Observability" at the end).
    "apps.common.observability.ObservabilityMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # /api/ requests go from here to ApiShortChainEnd, past the page middleware in between (apps/common/middleware.py;
    # what CommonMiddleware and XFrameOptionsMiddleware give API answers is kept; docs/PERFORMANCE.md).
    "apps.common.middleware.ApiShortChainMiddleware",
    # Static files (API docs assets from drf-spectacular-sidecar, Django admin CSS)
    # served by the app itself, also with DEBUG off: no CDN, no separate web server.
    "apps.common.middleware.StaticFilesMiddleware",
    # Sessions, Django's request.user and flash messages serve the pages (console, Django admin, API docs) only:
    # the app and admin APIs authenticate by bearer token: their requests never reach these (the short chain
    # above), and the subclasses pass them on as well, should that entry be taken out.
    "apps.common.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "apps.common.middleware.AuthenticationMiddleware",
    "apps.common.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Turns a locked Django admin sign-in into the 429 page (apps/lockout/handler.py lockout_response); pages only.
    "apps.common.middleware.AxesMiddleware",
    "apps.common.middleware.ApiShortChainEnd",
    "apps.common.middleware.ApiErrorEnvelopeMiddleware",
]
# axes.W002 looks for django-axes' own middleware by name; the subclass above is installed instead.
SILENCED_SYSTEM_CHECKS = ["axes.W002"]

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
        # finds the pool exhausted waits up to DB_POOL_TIMEOUT_SECONDS, then answers 503 unavailable with
        # Retry-After (see "PostgreSQL failures" at the end of this file).
        DATABASES["default"]["CONN_MAX_AGE"] = 0
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": env.int("DB_POOL_MIN_SIZE", default=2),
            "max_size": DB_POOL_MAX_SIZE,
            "timeout": env.float("DB_POOL_TIMEOUT_SECONDS", default=1.5),
            "reconnect_timeout": env.float("DB_POOL_RECONNECT_TIMEOUT_SECONDS", default=5.0),
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
# The lockout's backend first: a locked sign-in is refused before ModelBackend hashes a password.
AUTHENTICATION_BACKENDS = ["apps.lockout.handler.LockoutBackend", "django.contrib.auth.backends.ModelBackend"]
# Staff passwords (SPEC §9): checked by createsuperuser, the admin API's POST /staff (staff_create) and any
# Django password form. Chat users' passwords are the customer's business: these never apply to them.
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
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
# The release, as the OpenAPI schema and the webhooks' user-agent (receipts_console/<VERSION>) state it.
VERSION = "1.0.0"
EVENT_RETENTION_DAYS = env("EVENT_RETENTION_DAYS")
TOKEN_TTL_SECONDS = env("TOKEN_TTL_SECONDS")
# App-API tokens are served from the cache this long (apps/chat/auth.py); changes that matter invalidate them.
TOKEN_CACHE_SECONDS = env.int("TOKEN_CACHE_SECONDS", default=60)
# With Redis, each process also keeps up to TOKEN_LOCAL_CACHE_SIZE principals for TOKEN_LOCAL_CACHE_SECONDS at
# most, used only while its invalidation listener is live (apps/chat/token_local.py); 0 seconds: off.
TOKEN_LOCAL_CACHE_SECONDS = env.float("TOKEN_LOCAL_CACHE_SECONDS", default=10.0)
TOKEN_LOCAL_CACHE_SIZE = env.int("TOKEN_LOCAL_CACHE_SIZE", default=10_000)
# Long-poll wake-up across app-server processes (apps/events/wakeup.py, docs/OPERATIONS.md).
# auto: redis when EVENT_WAKEUP_REDIS_URL is set, else postgres (LISTEN/NOTIFY) on PostgreSQL, else local.
EVENT_WAKEUP = env("EVENT_WAKEUP", default="auto")
EVENT_WAKEUP_REDIS_URL = env("EVENT_WAKEUP_REDIS_URL", default="")
# How often a waiting long-poll re-reads the feed anyway (unset: 1 s for local, 15 s otherwise).
EVENT_WAKEUP_RECHECK_SECONDS = env.float("EVENT_WAKEUP_RECHECK_SECONDS", default=None)
# GET /events/stream (SPEC §14): a comment line this often keeps proxies from closing an idle stream; the stream
# ends after EVENT_STREAM_MAX_SECONDS and the client reconnects with its cursor (Last-Event-ID).
EVENT_STREAM_HEARTBEAT_SECONDS = env.float("EVENT_STREAM_HEARTBEAT_SECONDS", default=15.0)
EVENT_STREAM_MAX_SECONDS = env.float("EVENT_STREAM_MAX_SECONDS", default=300.0)
# The cycle collector's thresholds in a worker of the production server (receipts_console/asgi.py, tune_gc):
# 1 to 3 integers; "700,10,10" is Python's own default.
try:
    WEB_GC_THRESHOLD = tuple(int(part) for part in env.list("WEB_GC_THRESHOLD", default=["10000", "10", "10"]))
except ValueError:
    WEB_GC_THRESHOLD = ()
if not 1 <= len(WEB_GC_THRESHOLD) <= 3 or min(WEB_GC_THRESHOLD) < 0:
    raise ImproperlyConfigured("WEB_GC_THRESHOLD: one to three integers of 0 or more, e.g. 10000,10,10")

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
    "VERSION": VERSION,
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
        # Every operation can meet a database outage: 503 unavailable (SPEC §9, "PostgreSQL failures" below).
        "apps.common.schema.add_unavailable_response",
        # Every app-API operation and both token grants: 403 app_suspended (SPEC §13).
        "apps.common.schema.add_app_suspended_response",
        "apps.common.schema.forbid_unknown_fields_where_refused",
        "apps.common.schema.drop_redundant_blank_alternatives",
        # Last: every response documented above carries X-Request-ID.
        "apps.common.schema.add_request_id_header",
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
# Every purge runs on beat at the same interval; a run that waited a whole interval in the queue (worker down)
# is dropped: the next one does the work.
CELERY_BEAT_SCHEDULE = {
    name: {"task": task, "schedule": PURGE_INTERVAL_SECONDS, "options": {"expires": PURGE_INTERVAL_SECONDS}}
    for name, task in [
        ("purge-expired-group-acks", "receipts.purge_expired_group_acks"),
        ("purge-expired-events", "events.purge_expired_events"),
        # Retention (SPEC §9): messages past their plan's message_retention_days, expired tokens.
        ("purge-expired-messages", "chat.purge_expired_messages"),
        ("purge-expired-tokens", "chat.purge_expired_tokens"),
        # The webhook outbox's history (SPEC §10): deliveries older than WEBHOOK_DELIVERY_RETENTION_DAYS.
        ("purge-expired-webhook-deliveries", "webhooks.purge_expired_deliveries"),
    ]
}
WEBHOOK_DELIVERY_RETENTION_DAYS = env.int("WEBHOOK_DELIVERY_RETENTION_DAYS", default=7)

# --- Webhooks (SPEC §10, apps/webhooks, docs/WEBHOOKS.md). Deliveries are rows written with the receipt; beat sends
# the sweep every WEBHOOK_SWEEP_SECONDS and it posts whatever is due, so no delivery depends on a task message.
# http:// URLs are refused unless WEBHOOK_ALLOW_HTTP; hosts resolving to loopback, private, link-local, multicast
# or reserved addresses unless WEBHOOK_ALLOW_PRIVATE_NETWORKS (both for development and tests only).
WEBHOOK_ALLOW_HTTP = env.bool("WEBHOOK_ALLOW_HTTP", default=False)
WEBHOOK_ALLOW_PRIVATE_NETWORKS = env.bool("WEBHOOK_ALLOW_PRIVATE_NETWORKS", default=False)
WEBHOOK_SWEEP_SECONDS = env.float("WEBHOOK_SWEEP_SECONDS", default=2.0)
# A post gives up after WEBHOOK_TIMEOUT_SECONDS (the contract's 10 s). A claimed delivery is due again after
# WEBHOOK_LEASE_SECONDS if its worker never records the outcome (killed mid-post): longer than any post.
WEBHOOK_TIMEOUT_SECONDS = env.float("WEBHOOK_TIMEOUT_SECONDS", default=10.0)
WEBHOOK_LEASE_SECONDS = env.float("WEBHOOK_LEASE_SECONDS", default=60.0)
# Deliveries one worker process posts at once (threads: a slow receiver does not hold the others up).
WEBHOOK_CONCURRENCY = env.int("WEBHOOK_CONCURRENCY", default=8)
# One sweep stops claiming after this long and the next one goes on (the task's time limits follow).
WEBHOOK_SWEEP_MAX_SECONDS = env.float("WEBHOOK_SWEEP_MAX_SECONDS", default=50.0)
# Latency from a receipt's commit to its post: a sweep does not stop when nothing is due but watches for
# WEBHOOK_WATCH_SECONDS (a quarter longer than beat's interval: the next sweep starts before it ends, so one is
# always watching), asking every WEBHOOK_POLL_SECONDS whether anything is due (one indexed read) and posting what
# is. 0 turns the watch off: deliveries then wait for the next beat tick (up to WEBHOOK_SWEEP_SECONDS).
WEBHOOK_POLL_SECONDS = env.float("WEBHOOK_POLL_SECONDS", default=0.05)
WEBHOOK_WATCH_SECONDS = (
    min(1.25 * WEBHOOK_SWEEP_SECONDS, WEBHOOK_SWEEP_MAX_SECONDS) if WEBHOOK_POLL_SECONDS > 0 else 0.0
)
CELERY_BEAT_SCHEDULE["webhook-deliveries"] = {
    "task": "webhooks.deliver_due", "schedule": WEBHOOK_SWEEP_SECONDS, "options": {"expires": WEBHOOK_SWEEP_SECONDS},
}

# --- Observability (SPEC §9, docs/OPERATIONS.md "Metrics and logs"): GET /metrics and JSON logs
# Bearer token of GET /metrics; empty: /metrics answers 404. Several processes add up through
# PROMETHEUS_MULTIPROC_DIR (prometheus_client's own variable, read from the environment: apps/common/metrics.py).
METRICS_TOKEN = env("METRICS_TOKEN", default="")
# json (default): one JSON object per line; text: a readable line, for a terminal. The Celery worker logs through
# LOGGING too (its setup_logging signal, receipts_console/celery.py).
LOG_FORMAT = env("LOG_FORMAT", default="json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "apps.common.observability.RequestIdFilter"},
        "demote_client_errors": {"()": "apps.common.observability.DemoteClientErrors"},
        "idle_webhook_sweeps": {"()": "apps.webhooks.logs.IdleSweepFilter"},
    },
    "formatters": {
        "json": {"()": "apps.common.observability.JsonFormatter"},
        "text": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "text" if LOG_FORMAT == "text" else "json",
            "filters": ["request_id"],
        },
    },
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {
        # Django's default handlers of "django" (a plain console one with DEBUG on, mail to ADMINS) give way to ours.
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        "django.db.backends": {"level": "INFO"},
        "django.request": {"filters": ["demote_client_errors"]},
        # One line per request (apps/common/observability.py); LOG_REQUESTS=false keeps only the 5xx ones.
        "receipts.request": {"level": "INFO" if env.bool("LOG_REQUESTS", default=True) else "ERROR"},
        # The webhook sweep runs every WEBHOOK_SWEEP_SECONDS: the Celery worker's lines of the idle ones are dropped.
        "celery.app.trace": {"filters": ["idle_webhook_sweeps"]},
        "celery.worker.strategy": {"filters": ["idle_webhook_sweeps"]},
        # The development server's own access lines (make run): the request lines replace them; its errors stay.
        "django.server": {"handlers": ["console"], "level": "ERROR", "propagate": False},
    },
}

# --- PostgreSQL failures (SPEC §9; docs/OPERATIONS.md "PostgreSQL failures"). A request answers 503
# unavailable with Retry-After within 2 s when PostgreSQL is down: a connection attempt gives up after
# DB_CONNECT_TIMEOUT_SECONDS (psycopg's minimum is 2), a request waits for a pooled connection at most
# DB_POOL_TIMEOUT_SECONDS (above; 0.1 s while the pool's latest connection attempt failed), and a pool
# retrying a lost connection gives up after DB_POOL_RECONNECT_TIMEOUT_SECONDS (above; psycopg_pool's
# default is 5 minutes with back-offs up to about 2 minutes, which would keep a pool dry that long after
# PostgreSQL is back: given up sooner, the next request that needs a connection makes a new attempt).
if DATABASES["default"]["ENGINE"] != "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
        "connect_timeout", env.int("DB_CONNECT_TIMEOUT_SECONDS", default=2))

# --- sign-in lockout and trusted proxies (SPEC §9, apps/lockout, apps/common/clientip.py, docs/OPERATIONS.md)
# Failed secret checks (staff token, console, Django admin, the app API's password and client_credentials
# grants) in the last LOGIN_LOCKOUT_SECONDS: LOGIN_FAILURES_PER_NAME per (credential name, client address)
# and LOGIN_FAILURES_PER_ADDRESS per client address lock them out. Counted in the database, never the cache.
LOGIN_FAILURES_PER_NAME = env.int("LOGIN_FAILURES_PER_NAME", default=5)
LOGIN_FAILURES_PER_ADDRESS = env.int("LOGIN_FAILURES_PER_ADDRESS", default=50)
LOGIN_LOCKOUT_SECONDS = env.int("LOGIN_LOCKOUT_SECONDS", default=15 * 60)
# Reverse proxies whose X-Forwarded-For and X-Forwarded-Proto are believed (CIDRs, comma-separated).
TRUSTED_PROXIES = env.list("TRUSTED_PROXIES", default=[])
AXES_HANDLER = "apps.lockout.handler.LockoutHandler"
AXES_CLIENT_IP_CALLABLE = "apps.common.clientip.client_ip"
AXES_USERNAME_FORM_FIELD = "username"
AXES_USERNAME_CALLABLE = "apps.lockout.handler.lockout_name"
AXES_LOCKOUT_CALLABLE = "apps.lockout.handler.lockout_response"
# A refused (locked) attempt checked no password: it neither counts nor extends the lock.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
# What axes' own checks and messages read; the counting itself is apps/lockout/services.py.
AXES_FAILURE_LIMIT = LOGIN_FAILURES_PER_NAME
AXES_COOLOFF_TIME = timedelta(seconds=LOGIN_LOCKOUT_SECONDS)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"], "ip_address"]
# axes' own tables stay empty (our handler keeps apps.lockout.LoginFailure): no admin pages for them.
AXES_ENABLE_ADMIN = False
AXES_VERBOSE = False
# --- revocation (SPEC §9, apps/chat/auth.py): with a process-local cache (locmem), a deleted token's cached
# principal is dropped in every process on this machine through a stamp file. Unset: next to the SQLite
# database, else var/token-revocations.<vendor>.<database name>.
TOKEN_REVOCATION_STAMP = env("TOKEN_REVOCATION_STAMP", default="")
# --- cache (Redis) failures (SPEC §9, apps/common/cache.py, docs/OPERATIONS.md "Cache (Redis) failures")
# A cache call gives up within CACHE_TIMEOUT_MS (connect and read each get half); after a failure the cache is
# skipped (answers as a miss) for CACHE_BREAKER_SECONDS, then tried again. The wake-up broadcast
# (apps/events/wakeup.py) uses the same two settings.
CACHE_TIMEOUT_MS = env.int("CACHE_TIMEOUT_MS", default=250)
CACHE_BREAKER_SECONDS = env.float("CACHE_BREAKER_SECONDS", default=5.0)
