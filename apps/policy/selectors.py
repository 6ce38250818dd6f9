"""Reads of the policy: the cached snapshot (sends, conversation acks, deliveries) and, for the message and group
read acks, the snapshot's columns joined into their own lookup query (snapshot_sql), one round trip and no cache."""

from __future__ import annotations

from django.core.cache import cache
from django.db import connection

from apps.tenancy.models import App, PlanTier

from .evaluation import PolicySnapshot
from .fields import POLICY_FIELDS, RECEIPT_POLICY_FIELDS
from .models import ReceiptPolicy

_CACHE_TTL_SECONDS = 300


def _cache_key(app_id: int) -> str:
    return f"policy-snapshot:v1:{app_id}"


def policy_snapshot_build(*, policy: ReceiptPolicy, plan) -> PolicySnapshot:
    return PolicySnapshot(
        app_id=policy.app_id,
        **{field.name: getattr(policy, field.name) for field in RECEIPT_POLICY_FIELDS},
        plan=plan.code,
        plan_group_read_ack_allowed=plan.group_read_ack_allowed,
        plan_message_retention_days=plan.message_retention_days,
    )


# A snapshot read inside another query (the group receipts' lookup joins it, one round trip instead of two):
# snapshot_sql() gives the columns and joins for an app id expression, snapshot_from_row() reads them back.
_SNAPSHOT_POLICY_COLUMNS = tuple(field.name for field in RECEIPT_POLICY_FIELDS)
# bool(): SQLite hands booleans back as 0/1 through a raw cursor.
_SNAPSHOT_POLICY_IS_BOOL = tuple(field.type is bool for field in RECEIPT_POLICY_FIELDS)
_SNAPSHOT_PLAN_COLUMNS = ("code", "group_read_ack_allowed", "message_retention_days")


def snapshot_sql(app_id_sql: str) -> tuple[str, str]:
    """(columns, joins) selecting the policy snapshot of the app whose id is `app_id_sql` (LEFT JOINs)."""
    quote = connection.ops.quote_name
    policy_table, app_table = quote(ReceiptPolicy._meta.db_table), quote(App._meta.db_table)
    plan_table = quote(PlanTier._meta.db_table)
    columns = ", ".join(
        ["rp_.app_id"]
        + [f"rp_.{quote(name)}" for name in _SNAPSHOT_POLICY_COLUMNS]
        + [f"pl_.{quote(name)}" for name in _SNAPSHOT_PLAN_COLUMNS]
    )
    joins = (
        f"LEFT JOIN {policy_table} rp_ ON rp_.app_id = {app_id_sql} "
        f"LEFT JOIN {app_table} ap_ ON ap_.id = rp_.app_id LEFT JOIN {plan_table} pl_ ON pl_.code = ap_.plan_id"
    )
    return columns, joins


def snapshot_from_row(values, *, app_id: int) -> PolicySnapshot:
    """The snapshot from snapshot_sql()'s columns: what policy_snapshot_build gives for the same rows (a test
    compares the two for every field, tests/receipts/test_group_lookup_policy.py)."""
    if values[0] is None:
        # Every app has its policy row from app_create on, and it goes only with the app (the Django admin
        # cannot delete it): as policy_snapshot_get would, refuse rather than decide on nothing.
        raise ReceiptPolicy.DoesNotExist(f"App {app_id} has no receipt policy.")
    policy_end = 1 + len(_SNAPSHOT_POLICY_COLUMNS)
    policy = {
        name: bool(value) if is_bool else value
        for name, is_bool, value in zip(
            _SNAPSHOT_POLICY_COLUMNS, _SNAPSHOT_POLICY_IS_BOOL, values[1:policy_end], strict=True
        )
    }
    plan, plan_allows, retention = values[policy_end:]
    return PolicySnapshot(
        app_id=values[0],
        **policy,
        plan=plan,
        plan_group_read_ack_allowed=bool(plan_allows),
        plan_message_retention_days=retention,
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
    """The policy object of the admin API: every field of apps.policy.fields (SPEC §2, `plan` included) and
    `effective`."""
    snapshot = policy_snapshot_build(policy=policy, plan=plan)
    return {
        **{field.name: getattr(snapshot, field.name) for field in POLICY_FIELDS},
        "effective": {"group_read_ack": snapshot.effective_group_read_ack},
    }
