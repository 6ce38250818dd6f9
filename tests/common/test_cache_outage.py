"""SPEC §9: the cache (and a Redis used for wake-ups) is never a single point of failure.

Each test starts its own redis-server on a free port, points CACHES (and, for the wake-ups,
EVENT_WAKEUP_REDIS_URL) at it, and then really kills it or SIGSTOPs it. Through HTTP: every endpoint keeps
its normal answer, the breaker opens once (one WARNING for many requests), the cache is used again after
the breaker period, and an entry invalidated while the cache was skipped is not served when Redis is back.
No wall-clock asserts: the speed is measured in bench/cache_outage.py.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest
import redis
from django.core.cache import cache
from django.test import Client
from rest_framework.test import APIClient

from apps.chat.auth import token_cache_key
from apps.chat.models import AccessToken
from apps.chat.token_local import local_tokens
from apps.common.tokens import hash_token
from apps.events import wakeup
from apps.policy.selectors import _cache_key as policy_cache_key
from apps.tenancy.services import staff_create
from tests.conftest import PASSWORD
from tests.console.prg import sign_in
from tests.events.conftest import Chat

pytestmark = [
    # transaction: after-commit work (invalidations, wake-ups) really runs; serialized_rollback: the seeded
    # rows survive the flush.
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
]

CACHE_LOGGER = "apps.common.cache"
WAKEUP_LOGGER = "apps.events.wakeup"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisProcess:
    """A redis-server of this test's own: kill() / stop() (SIGSTOP) / cont() / restart()."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        for _ in range(200):
            try:
                if self.client().ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        os.kill(self.proc.pid, signal.SIGSTOP)

    def cont(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)

    def restart(self) -> None:
        self.start()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.cont()
            self.kill()


BREAKER_SECONDS = 0.3


@pytest.fixture
def own_redis(settings):
    """CACHES at a redis-server of this test's own, a short breaker, and a fresh cache connection."""
    server = RedisProcess()
    settings.CACHE_BREAKER_SECONDS = BREAKER_SECONDS
    # Assigning CACHES resets django.core.cache.caches (Django's setting_changed receiver): new connections.
    settings.CACHES = {"default": {"BACKEND": "apps.common.cache.RedisCache", "LOCATION": server.url}}
    assert cache._breaker.name == server.url and not cache._breaker.open_until
    yield server
    if server.proc.poll() is None:
        server.cont()
    wakeup.shutdown()  # its connections, before the server goes
    local_tokens.stop()
    server.close()


@pytest.fixture
def logs(caplog):
    caplog.set_level(logging.INFO, logger=CACHE_LOGGER)
    caplog.set_level(logging.INFO, logger=WAKEUP_LOGGER)
    return caplog


def _records(caplog, logger: str, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == logger and r.levelno == level]


def _pass_breaker_period() -> None:
    time.sleep(BREAKER_SECONDS + 0.1)


def _stall(server) -> None:
    """SIGSTOP Redis and wait until this process stops trusting its local token copy (its listener hears no
    answer to its heartbeat): from then on a request's token read goes to Redis, as before the local copy."""
    server.stop()
    deadline = time.monotonic() + 10
    while time.monotonic() < local_tokens.live_until:
        assert time.monotonic() < deadline, "the token cache listener still claims to be live"
        time.sleep(0.05)


@pytest.fixture
def operator_user(db):
    return staff_create(username="olga", password=PASSWORD, role="operator")


@pytest.fixture
def world(make_app, operator_user):
    """A Pro app, two logged-in devices and a staff API client, all made while the cache works."""
    chat = Chat(make_app(org_name="acme", app_name="chat", plan="pro"))
    alice, bob = chat.login("alice", "a-phone"), chat.login("bob", "b-phone")
    staff = APIClient()
    response = staff.post("/api/v1/admin/token", {"username": "olga", "password": PASSWORD}, format="json")
    assert response.status_code == 200, response.content
    staff.credentials(HTTP_AUTHORIZATION=f"Bearer {response.json()['access_token']}")
    chat.send(alice, "bob")
    # The conversation ack reads the policy snapshot through the cache (a message read ack reads it with the
    # message, in the same query).
    assert bob.client.post(f"{chat.base}/conversations/alice/read_ack").status_code == 200
    alice.poll()  # both tokens and the policy snapshot are cached now
    return chat, alice, bob, staff


def _policy_url(chat) -> str:
    return f"/api/v1/admin/apps/{chat.app.org_name}/{chat.app.app_name}/policy"


def _every_kind_of_request(chat, alice, bob, staff) -> None:
    """Token grant, send, events, read ack, admin PATCH, console sign-in: each with its normal answer."""
    fresh = chat.login("carol", "c-phone")  # POST /token (password grant)
    sent = chat.send(alice, "bob", {"text": "during"})  # 201
    events = bob.poll()
    assert sent["message_id"] in [e.get("message_id") for e in events["events"]]
    ack = bob.client.post(f"{chat.base}/messages/{sent['message_id']}/read_ack")
    assert ack.status_code == 200, ack.content
    assert "messages_read" in [e["type"] for e in alice.poll()["events"]]
    assert fresh.poll()["events"] == []
    patched = staff.patch(_policy_url(chat), {"delivery_ack_enabled": False}, format="json")
    assert patched.status_code == 200 and patched.json()["delivery_ack_enabled"] is False
    restored = staff.patch(_policy_url(chat), {"delivery_ack_enabled": True}, format="json")
    assert restored.status_code == 200 and restored.json()["delivery_ack_enabled"] is True
    console = Client()
    signed_in = sign_in(console, {"username": "olga", "password": PASSWORD})
    assert signed_in.status_code == 302 and console.get("/console/").status_code == 200
    wrong = sign_in(Client(), {"username": "olga", "password": "wrong"})
    assert wrong.status_code == 401


# --- Redis killed


def test_killed__every_endpoint_answers_normally__one_warning(own_redis, world, logs):
    own_redis.kill()
    for _ in range(3):
        _every_kind_of_request(*world)
    assert len(_records(logs, CACHE_LOGGER, logging.WARNING)) == 1  # the opening, not every request
    assert _records(logs, CACHE_LOGGER, logging.ERROR) == []


def test_killed_then_restarted__cache_used_again_after_the_breaker_period(own_redis, world, logs):
    chat, alice, bob, staff = world
    own_redis.kill()
    _every_kind_of_request(*world)
    own_redis.restart()  # an empty Redis on the same port
    _pass_breaker_period()
    chat.send(alice, "bob")
    assert bob.client.post(f"{chat.base}/conversations/alice/read_ack").status_code == 200
    token = alice.client._credentials["HTTP_AUTHORIZATION"].split()[1]
    raw = own_redis.client()
    assert raw.exists(cache.make_key(token_cache_key(hash_token(token))))  # cached again
    assert raw.exists(cache.make_key(policy_cache_key(chat.app.pk)))
    assert len(_records(logs, CACHE_LOGGER, logging.WARNING)) == 1
    assert len(_records(logs, CACHE_LOGGER, logging.INFO)) == 1  # "available again"


# --- Redis stalled (SIGSTOP)


def test_stalled__every_endpoint_answers_normally__breaker_opened_once(own_redis, world, logs, settings):
    settings.CACHE_BREAKER_SECONDS = 60  # one opening for the whole test
    settings.CACHES = {"default": {"BACKEND": "apps.common.cache.RedisCache", "LOCATION": own_redis.url}}
    chat, alice, bob, staff = world
    chat.send(alice, "bob")
    own_redis.stop()
    for _ in range(3):
        _every_kind_of_request(*world)
    warnings = _records(logs, CACHE_LOGGER, logging.WARNING)
    assert len(warnings) == 1 and "Timeout" in warnings[0].getMessage()


def test_stalled__policy_patched__after_resume_the_new_policy_is_served(own_redis, world, logs):
    chat, alice, bob, staff = world
    raw = own_redis.client()
    key = cache.make_key(policy_cache_key(chat.app.pk))
    assert raw.exists(key)  # the snapshot with read acks on is cached
    _stall(own_redis)
    assert alice.poll()["events"]  # this request's cache call times out: the breaker opens
    patched = staff.patch(_policy_url(chat), {"read_ack_enabled": False}, format="json")
    assert patched.status_code == 200  # its invalidation is skipped
    own_redis.cont()
    assert raw.exists(key)  # the stale snapshot is still in Redis
    chat.send(alice, "bob")
    refused = bob.client.post(f"{chat.base}/conversations/alice/read_ack")  # breaker open: from the database
    assert (refused.status_code, refused.json()["error"]) == (403, "feature_disabled")
    _pass_breaker_period()
    refused = bob.client.post(f"{chat.base}/conversations/alice/read_ack")
    assert (refused.status_code, refused.json()["error"]) == (403, "feature_disabled")
    assert cache.get(policy_cache_key(chat.app.pk))["read_ack_enabled"] is False  # cached again, the new one
    assert len(_records(logs, CACHE_LOGGER, logging.INFO)) == 1


def test_stalled__token_revoked__after_resume_the_token_stays_refused(own_redis, world):
    chat, alice, bob, staff = world
    token = bob.client._credentials["HTTP_AUTHORIZATION"].split()[1]
    raw = own_redis.client()
    key = cache.make_key(token_cache_key(hash_token(token)))
    assert raw.exists(key)
    _stall(own_redis)
    assert alice.events().status_code == 200  # the breaker opens
    AccessToken.objects.filter(key_hash=hash_token(token)).delete()  # revoked (as in the Django admin)
    assert bob.events().status_code == 401
    own_redis.cont()
    assert raw.exists(key)  # the revoked token's entry is still in Redis
    _pass_breaker_period()
    assert bob.events().status_code == 401
    assert not raw.exists(key)
    assert alice.events().status_code == 200  # and the cache serves the others again
    assert cache.get(token_cache_key(hash_token(alice.client._credentials["HTTP_AUTHORIZATION"].split()[1])))


def test_stalled__console_sign_in_and_its_lockout_work(own_redis, operator_user, logs):
    # The lockout counts in the database (apps/lockout), so it holds while the cache is stalled.
    own_redis.stop()
    client = Client()
    for _ in range(3):
        assert sign_in(client, {"username": "olga", "password": "nope"}).status_code == 401
    assert sign_in(client, {"username": "olga", "password": PASSWORD}).status_code == 302
    for _ in range(5):
        sign_in(client, {"username": "olga", "password": "nope"})
    assert sign_in(client, {"username": "olga", "password": PASSWORD}).status_code == 429
    assert len(_records(logs, CACHE_LOGGER, logging.WARNING)) <= 1


def test_breaker__many_skipped_invalidations__cache_flushed_when_back(own_redis, world, monkeypatch):
    from apps.common import cache as cache_module

    monkeypatch.setattr(cache_module, "_MAX_PENDING", 3)
    chat, alice, bob, staff = world
    raw = own_redis.client()
    assert raw.dbsize() > 0
    own_redis.stop()
    cache.delete_many([f"k{i}" for i in range(5)])  # more than the breaker keeps track of
    own_redis.cont()
    _pass_breaker_period()
    assert cache.get("anything") is None  # the probe flushed the cache database
    assert raw.dbsize() == 0


def test_cache_api__skipped_calls_answer_as_misses(own_redis, settings):
    cache.set("k", 1)
    assert cache.get("k") == 1
    own_redis.kill()
    assert cache.get("k", "dflt") == "dflt"
    assert cache.get_many(["k"]) == {}
    assert cache.has_key("k") is False
    assert cache.add("k", 2) is False
    assert cache.set("k", 2) is None and cache.set_many({"k": 2}) == []
    assert cache.delete("k") is False and cache.delete_many(["k"]) is None
    assert cache.touch("k") is False
    assert cache.get_or_set("k", 3) == 3
    with pytest.raises(ValueError):
        cache.incr("k")
    with pytest.raises(ValueError):
        cache.decr("k")


# --- wake-ups through a Redis that fails


@pytest.fixture
def redis_wakeups(own_redis, settings):
    settings.EVENT_WAKEUP = "redis"
    settings.EVENT_WAKEUP_REDIS_URL = own_redis.url
    settings.EVENT_WAKEUP_RECHECK_SECONDS = 0.2
    return own_redis


@pytest.mark.parametrize("failure", ["kill", "stop"])
def test_wakeup_redis_fails__send_and_ack_still_succeed__one_warning(redis_wakeups, world, logs, failure):
    chat, alice, bob, staff = world
    assert bob.poll(timeout=0.1)["events"] is not None  # the listener is up
    getattr(redis_wakeups, failure)()
    for _ in range(3):
        sent = chat.send(alice, "bob", {"text": "while down"})  # 201, its broadcast skipped
        ack = bob.client.post(f"{chat.base}/messages/{sent['message_id']}/read_ack")
        assert ack.status_code == 200
        page = bob.poll(timeout=0.3)  # the long-poll still answers, from the database
        assert sent["message_id"] in [e.get("message_id") for e in page["events"]] or page["events"] == []
    assert len(_records(logs, WAKEUP_LOGGER, logging.WARNING)) >= 1
    broadcast_warnings = [r for r in _records(logs, WAKEUP_LOGGER, logging.WARNING) if "broadcast" in r.getMessage()]
    assert len(broadcast_warnings) == 1


def test_wakeup_redis_down_from_the_start__long_poll_does_not_wait_for_the_listener(redis_wakeups, world):
    chat, alice, bob, staff = world
    wakeup.shutdown()
    redis_wakeups.kill()
    sent = chat.send(alice, "bob")
    page = bob.poll(timeout=0.2)
    assert sent["message_id"] in [e.get("message_id") for e in page["events"]]
    assert wakeup.backend()._settled.is_set()  # the failed connect released the waiters



# --- the process-local token copy (apps/chat/token_local.py): revocation from another machine


def _token(client) -> str:
    return client.client._credentials["HTTP_AUTHORIZATION"].split()[1]


def _revoke_on_another_machine(server, tmp_path, token: str) -> None:
    """Delete the token's row in a manage.py shell with its own revocation stamp (as on another machine, whose
    stamp file this process never sees): only the Redis delete and the pub/sub message can reach us."""
    from tests.servers import ROOT, database_url

    env = dict(os.environ, DATABASE_URL=database_url(), CACHE_URL=server.url, CACHE_BREAKER_SECONDS="0.3",
               TOKEN_REVOCATION_STAMP=str(tmp_path / "other-machine.stamp"),
               DJANGO_SETTINGS_MODULE="receipts_console.settings")
    code = ("from apps.chat.models import AccessToken; from apps.common.tokens import hash_token; "
            f"assert AccessToken.objects.filter(key_hash=hash_token({token!r})).delete()[0] == 1")
    result = subprocess.run([sys.executable, "manage.py", "shell", "--no-imports", "-c", code], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def _gets(server) -> int:
    return server.client().info("commandstats").get("cmdstat_get", {}).get("calls", 0)


def test_local_copy__a_known_token_costs_no_redis_get(own_redis, world, settings):
    chat, alice, bob, staff = world
    before = _gets(own_redis)
    assert alice.events().status_code == 200
    with_copy = _gets(own_redis) - before
    settings.TOKEN_LOCAL_CACHE_SECONDS = 0
    before = _gets(own_redis)
    assert alice.events().status_code == 200
    assert _gets(own_redis) - before == with_copy + 1  # the token's GET, and only it


def test_local_copy__revoked_on_another_machine__401_here_at_once(own_redis, world, tmp_path):
    chat, alice, bob, staff = world
    assert alice.events().status_code == 200 and bob.events().status_code == 200  # both in the local copy
    _revoke_on_another_machine(own_redis, tmp_path, _token(bob))
    assert bob.events().status_code == 401  # dropped by the pub/sub message
    assert alice.events().status_code == 200


def test_local_copy__redis_killed__not_trusted__revoked_elsewhere_401(own_redis, world, tmp_path):
    chat, alice, bob, staff = world
    assert bob.events().status_code == 200
    own_redis.kill()
    # Nobody can tell us (the other machine cannot publish, the stamp is not ours): the listener lost its
    # connection, so the local copy is not used and the token is read from the database.
    _revoke_on_another_machine(own_redis, tmp_path, _token(bob))
    assert local_tokens.live_until == 0.0
    assert bob.events().status_code == 401
    assert alice.events().status_code == 200


def test_local_copy__redis_stalled__not_trusted__revoked_elsewhere_401(own_redis, world, tmp_path):
    chat, alice, bob, staff = world
    assert bob.events().status_code == 200
    _stall(own_redis)  # the listener's connection stays open but Redis answers nothing
    _revoke_on_another_machine(own_redis, tmp_path, _token(bob))  # its publish times out
    assert bob.events().status_code == 401
    own_redis.cont()
    assert bob.events().status_code == 401  # nor once Redis is back (the entry read before is gone)
    assert alice.events().status_code == 200
