"""Policy and plan are cached per app, and a change through the admin API applies on the very next receipt call.

Run with the configured cache (locmem by default; Redis when CACHE_URL points to Redis, as in CI) and always
with locmem as well. Each test first proves the snapshot really is cached (so the test is about invalidation,
not about a cache that is never used).
"""

import os

import pytest
from django.conf import settings as django_settings
from django.core.cache import cache

from apps.policy.selectors import _cache_key

from .conftest import error

pytestmark = pytest.mark.django_db

LOCMEM = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "receipts-tests"}}


@pytest.fixture(params=["configured", "locmem"])
def cache_backend(request, settings):
    if request.param == "locmem":
        settings.CACHES = LOCMEM
    cache.clear()
    yield django_settings.CACHES["default"]["BACKEND"]
    cache.clear()


def patch_policy(client, world, **changes):
    response = client.patch(
        f"/api/v1/admin/apps/{world.app.org_name}/{world.app.app_name}/policy", changes, format="json"
    )
    assert response.status_code == 200, response.json()


def assert_cached(world):
    assert cache.get(_cache_key(world.app.pk)) is not None


def test_cache_backend_in_use(cache_backend, request):
    # The "configured" runs below really use Redis when CACHE_URL says so (CI), locmem otherwise.
    configured_redis = os.environ.get("CACHE_URL", "").startswith(("redis://", "rediss://"))
    if request.node.callspec.params["cache_backend"] == "configured" and configured_redis:
        assert cache_backend == "apps.common.cache.RedisCache"  # Django's, reusing its client (apps/common/cache.py)
    else:
        assert cache_backend == "django.core.cache.backends.locmem.LocMemCache"


def test_read_ack_switched_off_by_operator__next_message_ack_refused(world, operator_client, cache_backend):
    alice, bob = world.login("alice"), world.login("bob")
    world.send(alice, "bob")
    # The conversation ack reads the cached snapshot (a message read ack reads the policy with the message).
    assert world.conversation_ack(bob, "alice").status_code == 200
    assert_cached(world)
    second, third = (world.send(alice, "bob") for _ in range(2))

    patch_policy(operator_client, world, read_ack_enabled=False)
    assert error(world.message_ack(bob, second.message_id)) == (403, "feature_disabled")
    assert error(world.conversation_ack(bob, "alice")) == (403, "feature_disabled")

    patch_policy(operator_client, world, read_ack_enabled=True)
    assert world.message_ack(bob, third.message_id).status_code == 200


def test_plan_downgraded_by_business__next_ack_uses_the_new_retention(world, business_client, cache_backend):
    alice, bob = world.login("alice"), world.login("bob")
    world.send(alice, "bob")
    assert world.conversation_ack(bob, "alice").status_code == 200  # reads (and caches) the snapshot
    assert_cached(world)
    five_days_old = world.age(world.send(alice, "bob"), days=5)  # inside Pro's 7 days, outside Free's 3

    patch_policy(business_client, world, plan="free")

    assert error(world.message_ack(bob, five_days_old.message_id)) == (410, "ack_expired")


def test_group_switch_and_ttl_changes__next_group_ack_follows(group_world, operator_client, business_client,
                                                             cache_backend):
    world = group_world
    alice, bob, carol, dave = (world.login(n) for n in ("alice", "bob", "carol", "dave"))
    group = world.group("alice", members=["bob", "carol", "dave"])
    message = world.send_group(alice, group)
    world.age(message, days=2)
    assert world.group_ack(bob, group.group_id, message.message_id).status_code == 200
    assert_cached(world)

    patch_policy(business_client, world, group_ack_ttl_days=1)
    assert error(world.group_ack(carol, group.group_id, message.message_id)) == (410, "ack_expired")

    patch_policy(business_client, world, group_ack_ttl_days=3)
    patch_policy(operator_client, world, group_read_ack_enabled=False)
    assert error(world.group_ack(carol, group.group_id, message.message_id)) == (403, "feature_disabled")

    patch_policy(operator_client, world, group_read_ack_enabled=True)
    patch_policy(business_client, world, group_ack_count_visibility="all_members")
    assert world.group_ack(dave, group.group_id, message.message_id).json()["count"] == 2
    assert world.ack_list(carol, group.group_id, message.message_id).json()["count"] == 2
