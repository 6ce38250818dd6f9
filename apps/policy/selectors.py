"""Reads of the policy; the receipt hot path uses the cached snapshot."""

from __future__ import annotations

from django.core.cache import cache

from .evaluation import PolicySnapshot
from .models import ReceiptPolicy

_CACHE_TTL_SECONDS = 300


def _cache_key(app_id: int) -> str:
    return f"policy-snapshot:v1:{app_id}"


def policy_snapshot_build(*, policy: ReceiptPolicy, plan) -> PolicySnapshot:
    return PolicySnapshot(
        app_id=policy.app_id,
        delivery_ack_enabled=policy.delivery_ack_enabled,
        read_ack_enabled=policy.read_ack_enabled,
        group_read_ack_enabled=policy.group_read_ack_enabled,
        group_ack_sender_scope=policy.group_ack_sender_scope,
        group_ack_member_limit=policy.group_ack_member_limit,
        group_ack_count_visibility=policy.group_ack_count_visibility,
        group_ack_ttl_days=policy.group_ack_ttl_days,
        plan=plan.code,
        plan_group_read_ack_allowed=plan.group_read_ack_allowed,
        plan_message_retention_days=plan.message_retention_days,
    )


def policy_snapshot_get(*, app_id: int) -> PolicySnapshot:
    """The app's policy and plan, from the cache or one query; invalidated by every change."""
    key = _cache_key(app_id)
    data = cache.get(key)
    if data is not None:
        return PolicySnapshot(**data)
    policy = ReceiptPolicy.objects.select_related("app__plan").get(app_id=app_id)
    snapshot = policy_snapshot_build(policy=policy, plan=policy.app.plan)
    cache.set(key, snapshot.as_dict(), _CACHE_TTL_SECONDS)
    return snapshot


def policy_snapshot_invalidate(*, app_id: int) -> None:
    cache.delete(_cache_key(app_id))


def policy_as_dict(*, policy: ReceiptPolicy, plan) -> dict:
    """The policy object of the admin API: every field of SPEC §2, `plan` and `effective`."""
    snapshot = policy_snapshot_build(policy=policy, plan=plan)
    return {
        "delivery_ack_enabled": snapshot.delivery_ack_enabled,
        "read_ack_enabled": snapshot.read_ack_enabled,
        "group_read_ack_enabled": snapshot.group_read_ack_enabled,
        "group_ack_sender_scope": snapshot.group_ack_sender_scope,
        "group_ack_member_limit": snapshot.group_ack_member_limit,
        "group_ack_count_visibility": snapshot.group_ack_count_visibility,
        "group_ack_ttl_days": snapshot.group_ack_ttl_days,
        "plan": snapshot.plan,
        "effective": {"group_read_ack": snapshot.effective_group_read_ack},
    }
