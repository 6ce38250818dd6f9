"""App-API tokens: the principal (app, user, device) a bearer token stands for, and the cache of principals.

No DRF here: the services drop cached principals (token_cache_forget), the API's authentication
(apps/chat/api_base.py) reads them (authenticate_principal).

Every app-API request authenticates, so a known token is served from the cache (Redis in production) for
TOKEN_CACHE_SECONDS (60 s), keyed by the token's hash:
- only what a request needs is cached (app, user and device ids and names, the device's options, expiry);
  other fields load lazily from the database if anything ever reads them;
- the expiry is checked on every request, cached or not, and an entry never outlives its token;
- an entry is dropped when it would become wrong: a login on the same device replaces the device's options
  (user_token_issue), and a deleted token (revoked in the Django admin, or deleted with its user, device or
  app, by any means: API, console, admin, shell, task) is dropped by the post_delete receiver below, which
  ChatConfig.ready connects in every process (web, worker, manage.py), and again once the deletion commits
  (a request that read the row before the commit may have cached it meanwhile); an app suspended or resumed
  (SPEC §13) has all its tokens dropped the same way, by the post_save receiver below;
- every process must see a drop at once. A shared cache (Redis) does that by itself. A process-local cache
  (locmem, the default: runserver and the Celery worker of `make run`, gunicorn workers, a manage.py shell)
  cannot, so there the cache key carries a revocation stamp: a file every drop appends to after the commit,
  stat()ed on every request (microseconds, no query). A drop anywhere on the machine changes the stamp and
  every process's cached principals miss once. Machines do not share it: several machines need a shared
  cache (docs/OPERATIONS.md, "Revocation");
- with Redis, each process also keeps the principals it read in a bounded map (apps/chat/token_local.py) and
  serves them without a Redis GET while its invalidation listener is live; token_cache_forget drops them there
  too: in this process at once, elsewhere by a Redis pub/sub message and the machine's revocation stamp;
- unknown tokens are never cached (random guesses must not fill the cache).
"""

from __future__ import annotations

import functools
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.cache import cache
from django.core.cache.backends.locmem import LocMemCache
from django.db import connection, transaction
from django.utils import timezone
from django.utils.module_loading import import_string
from redis.exceptions import RedisError

from apps.common.cache import RedisCache, breaker_for
from apps.common.db import column_converters, converted, prepared_cursor
from apps.common.tokens import hash_token
from apps.tenancy.models import App

from .models import AccessToken, ChatUser, DeviceSession
from .token_local import local_tokens

logger = logging.getLogger(__name__)

# In the models' field order: Model.from_db takes values in that order. suspended: every request refuses a
# suspended app's tokens (SPEC §13); forget_app_tokens_on_suspension drops the app's cached principals when it
# changes.
_APP_FIELDS = ("id", "org_name", "app_name", "suspended")
# send_read_receipts: every read ack decides its privacy from it (SPEC §11); user_settings_update forgets the
# user's cached principals when it changes.
_USER_FIELDS = ("id", "app_id", "username", "send_read_receipts")
_DEVICE_FIELDS = ("id", "user_id", "device_id", "require_ack", "require_delivery_ack")


@dataclass
class Principal:
    """Who calls the app API: always an app; for a user token also the user and its device."""

    app: object
    user: object | None = None
    device: object | None = None

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_app(self) -> bool:
        return self.user is None


def token_cache_key(key_hash: str) -> str:
    if _cache_is_process_local():
        return f"app-token:v3:{_revocation_stamp()}:{key_hash}"
    return f"app-token:v3:{key_hash}"  # v3: the app's suspended is cached too


def _cache_is_process_local() -> bool:
    # By the configured class, not the connection object (caches["default"] is a per-thread lookup; every request).
    return _is_locmem(settings.CACHES["default"]["BACKEND"])


def _local_copy_source() -> tuple[str, str] | None:
    """(Redis URL, channel) of the process-local copy in front of a shared cache; None when it is not used
    (locmem: the cache is local already; TOKEN_LOCAL_CACHE_SECONDS 0; the cache's breaker open)."""
    if settings.TOKEN_LOCAL_CACHE_SECONDS <= 0 or not _is_redis(settings.CACHES["default"]["BACKEND"]):
        return None
    database = settings.DATABASES["default"]
    url, channel, breaker = _local_copy_source_for(
        str(settings.CACHES["default"]["LOCATION"]), str(database.get("HOST") or ""), str(database["NAME"]),
        float(settings.CACHE_BREAKER_SECONDS))
    if breaker.open_until:
        return None
    return url, channel


@functools.lru_cache(maxsize=8)
def _local_copy_source_for(location: str, host: str, name: str, breaker_seconds: float):
    # The first server (the one written to); one channel per database, as the revocation stamp. The breaker is
    # the cache's own (apps/common/cache.py keeps one per servers and period), found without the cache proxy.
    servers = re.split("[;,]", location)
    return servers[0], f"app-token-forget:{host}:{name}", breaker_for(servers, breaker_seconds)


def _publish_forget(channel: str, key_hashes: list[str]) -> None:
    """Tell every process's listener to drop these hashes; a failure leaves it to the stamp and the bounds."""
    try:
        client = cache._cache.get_client(None, write=True)
        for start in range(0, len(key_hashes), 500):
            client.publish(channel, ",".join(key_hashes[start:start + 500]))
    except (RedisError, OSError) as exc:  # the drop stands; others see it by the stamp or their liveness
        logger.warning("token cache drop not published (%s: %s): other machines keep the token until their "
                       "listener's liveness lapses or TOKEN_LOCAL_CACHE_SECONDS", type(exc).__name__, exc)


@functools.lru_cache(maxsize=8)
def _is_redis(backend_path: str) -> bool:
    return issubclass(import_string(backend_path), RedisCache)


@functools.lru_cache(maxsize=8)
def _is_locmem(backend_path: str) -> bool:
    return issubclass(import_string(backend_path), LocMemCache)


def revocation_stamp_path() -> Path:
    """The file whose changes tell every process on this machine to stop trusting its local token cache.

    TOKEN_REVOCATION_STAMP when set; else next to the SQLite database (every process of one deployment opens
    that file, and each test run has its own), else in var/ per database name.
    """
    database = settings.DATABASES["default"]  # the test runner renames the test database here too
    return _stamp_path(settings.TOKEN_REVOCATION_STAMP, database["ENGINE"], str(database["NAME"]),
                       str(settings.VAR_DIR))


@functools.lru_cache(maxsize=8)
def _stamp_path(configured: str, engine: str, name: str, var_dir: str) -> Path:
    # Cached: every request of a local token cache stat()s it, and building it cost more than the stat.
    if configured:
        return Path(configured)
    vendor = "sqlite" if engine.endswith("sqlite3") else "postgresql" if "postgresql" in engine else \
        engine.rsplit(".", 1)[-1]
    if vendor == "sqlite" and name != ":memory:" and not name.startswith("file:"):
        return Path(f"{name}.token-revocations")
    return Path(var_dir) / f"token-revocations.{vendor}.{name}"


def _revocation_stamp() -> str:
    try:
        st = os.stat(revocation_stamp_path())
    except OSError:  # not there yet (no revocation since it was deleted), or unreadable: the bump logs that
        return "0"
    return f"{st.st_ino:x}.{st.st_size:x}.{st.st_mtime_ns:x}"


_STAMP_MAX_BYTES = 64 * 1024


def _revocation_stamp_bump() -> None:
    """Change the stamp: one byte appended (its size grows even within one clock tick); a new file when big."""
    path = revocation_stamp_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            size = 0
        if size >= _STAMP_MAX_BYTES:
            fresh = path.with_name(f"{path.name}.{os.getpid()}.new")
            fresh.write_bytes(b".")
            os.replace(fresh, path)  # a new inode: a stamp no process has seen
        else:
            with open(path, "ab") as stamp:
                stamp.write(b".")
    except OSError:
        # The deletion stands; other processes of this machine keep the token up to TOKEN_CACHE_SECONDS.
        logger.exception("Token revocation stamp %s not writable: other processes see the revocation late", path)


def token_cache_forget(key_hashes) -> None:
    """Drop the cached principals of these token hashes in every process (a no-op for hashes not cached).

    Inside a transaction: dropped now for this process, and again for everyone once it commits (a request
    elsewhere may read and cache the row until then); outside one: once, now.
    """
    key_hashes = list(key_hashes)
    if not key_hashes:
        return

    def forget():
        local_tokens.forget(key_hashes)
        cache.delete_many([token_cache_key(key_hash) for key_hash in key_hashes])
        source = _local_copy_source_for_publish()
        if source is not None:
            _publish_forget(source[1], key_hashes)
        if _cache_is_process_local() or settings.TOKEN_LOCAL_CACHE_SECONDS > 0:
            _revocation_stamp_bump()

    if connection.in_atomic_block:
        local_tokens.forget(key_hashes)
        cache.delete_many([token_cache_key(key_hash) for key_hash in key_hashes])
        transaction.on_commit(forget)
    else:
        forget()


def _local_copy_source_for_publish() -> tuple[str, str] | None:
    # Published even while this process's breaker is open (the publish fails fast then, and says so).
    if settings.TOKEN_LOCAL_CACHE_SECONDS <= 0 or not _is_redis(settings.CACHES["default"]["BACKEND"]):
        return None
    database = settings.DATABASES["default"]
    return _local_copy_source_for(str(settings.CACHES["default"]["LOCATION"]), str(database.get("HOST") or ""),
                                  str(database["NAME"]), float(settings.CACHE_BREAKER_SECONDS))[:2]


def forget_deleted_token(sender, instance, **kwargs):
    """post_delete of AccessToken (connected in ChatConfig.ready): a deleted token stops working at once.

    Cache coherence, not a business rule. Sent for cascaded rows too (a user, device or app deleted, one row
    or a queryset): Django's deletion collector sends post_delete for every related row a receiver listens to.
    An expired token is skipped (its entry never outlives it): the expired-token purge costs no cache call.
    """
    if instance.expires_at > timezone.now():
        token_cache_forget([instance.key_hash])


def forget_app_tokens_on_suspension(sender, instance, created, update_fields=None, **kwargs):
    """post_save of App (connected in ChatConfig.ready): suspending or resuming an app (SPEC §13), by any means
    that saves the row (API, console, Django admin, shell), drops the cached principals of all its live tokens,
    so every process sees the new `suspended` at once. A save naming other fields only costs nothing."""
    if created or (update_fields is not None and "suspended" not in update_fields):
        return
    token_cache_forget(
        AccessToken.objects.filter(app_id=instance.pk, expires_at__gt=timezone.now()).values_list("key_hash", flat=True)
    )


@functools.cache
def _principal_row_statement(vendor: str) -> tuple[str, list[list]]:
    """The live token's cacheable values in one fixed statement (prepared on PostgreSQL) and their converters.
    Every device's first request after a start, and after each TOKEN_CACHE_SECONDS, misses the caches: 10,000
    devices reconnecting after a restart all run it. Composed by the ORM (select_related) it cost ~1.5 ms of
    CPU each (py-spy, bench/many_waiters.py: 30 % of a ramp of 10,000 streams)."""
    quote = connection.ops.quote_name
    tables = [(App, "a", _APP_FIELDS), (ChatUser, "u", _USER_FIELDS), (DeviceSession, "d", _DEVICE_FIELDS)]
    fields = [AccessToken._meta.get_field("expires_at")]
    selected = ["t." + quote("expires_at")]
    for model, alias, names in tables:
        for name in names:
            field = model._meta.get_field(name)  # an attname (app_id) names its ForeignKey
            fields.append(field)
            selected.append(f"{alias}.{quote(field.column)}")
    sql = (
        f"SELECT {', '.join(selected)} FROM {quote(AccessToken._meta.db_table)} t "
        f"JOIN {quote(App._meta.db_table)} a ON a.id = t.app_id "
        f"LEFT JOIN {quote(ChatUser._meta.db_table)} u ON u.id = t.user_id "
        f"LEFT JOIN {quote(DeviceSession._meta.db_table)} d ON d.id = t.device_id "
        "WHERE t.key_hash = %(key)s AND t.expires_at > %(now)s"
    )
    return sql, column_converters(fields)


def _principal_row_read(key_hash: str) -> tuple | None:
    """The cacheable part of a live token (plain values only: cheap to pickle, no model state), or None."""
    sql, converters = _principal_row_statement(connection.vendor)
    with prepared_cursor() as cursor:
        cursor.execute(sql, {"key": key_hash, "now": connection.ops.adapt_datetimefield_value(timezone.now())})
        found = cursor.fetchone()
    if found is None:
        return None
    values = converted(found, converters)
    expires_at, rest = values[0], values[1:]
    app = tuple(rest[:len(_APP_FIELDS)])
    user = tuple(rest[len(_APP_FIELDS):len(_APP_FIELDS) + len(_USER_FIELDS)])
    device = tuple(rest[len(_APP_FIELDS) + len(_USER_FIELDS):])
    return (
        expires_at.timestamp(),
        app,
        user if user[0] is not None else None,
        device if device[0] is not None else None,
    )


def _principal_from_row(row: tuple) -> Principal:
    _, app, user, device = row
    # from_db: the fields not cached are deferred, so reading one loads it rather than inventing a value.
    return Principal(
        app=App.from_db("default", _APP_FIELDS, app),
        user=ChatUser.from_db("default", _USER_FIELDS, user) if user is not None else None,
        device=DeviceSession.from_db("default", _DEVICE_FIELDS, device) if device is not None else None,
    )


def authenticate_principal(token: str) -> Principal | None:
    """The principal of a live token, from the cache or one query; None for an unknown or expired token."""
    key_hash = hash_token(token)
    now = timezone.now().timestamp()
    source = _local_copy_source()
    row = None
    if source is not None:
        local_tokens.ensure_listening(*source)
        # Both read before the shared cache: a drop after this point makes the row read below not kept.
        stamp, sequence = _revocation_stamp(), local_tokens.sequence
        row = local_tokens.get(key_hash, stamp)
        if row is not None:
            return _principal_from_row(row) if row[0] > now else None
    key = token_cache_key(key_hash)
    row = cache.get(key)
    if row is None:
        row = _principal_row_read(key_hash)
        if row is None:
            return None
        ttl = min(settings.TOKEN_CACHE_SECONDS, int(row[0] - now))
        if ttl > 0:
            cache.set(key, row, ttl)
    if source is not None:
        local_tokens.put(key_hash, row, stamp, sequence)
    if row[0] <= now:
        return None
    return _principal_from_row(row)


def principal_serves(principal: Principal, url_kwargs: dict) -> bool:
    """Whether the principal's app is the one the URL names: a token is useless on another app's base path."""
    return (principal.app.org_name, principal.app.app_name) == (url_kwargs.get("org_name"), url_kwargs.get("app_name"))
