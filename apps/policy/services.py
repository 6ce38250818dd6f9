"""Writes of the receipt policy and plan: apps created with their policy; validation, role split, gating, audit."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.audit.services import audit_record_many
from apps.common.exceptions import ApplicationError, Conflict, Forbidden, InvalidRequest, only_known_fields
from apps.common.reason_codes import ReasonCode
from apps.common.tokens import hash_token
from apps.tenancy.models import App, PlanTier
from apps.tenancy.plans import DEFAULT_PLAN
from apps.tenancy.roles import staff_roles
from apps.tenancy.services import DuplicateApp, app_build

from . import evaluation
from .fields import BY_NAME
from .models import ReceiptPolicy
from .selectors import policy_snapshot_invalidate


class ForbiddenField(Forbidden):
    code = ReasonCode.FORBIDDEN_FIELD


class PlanNotEligible(Conflict):
    code = ReasonCode.PLAN_NOT_ELIGIBLE


class ReasonRequired(ApplicationError):
    code, status = ReasonCode.REASON_REQUIRED, 400


@dataclass(frozen=True)
class FieldChange:
    """One field a policy_update changed: its audit row's (field, old, new), in the field's JSON values."""

    field: str
    old: bool | int | str
    new: bool | int | str


@dataclass(frozen=True)
class PolicyUpdate:
    """What policy_update leaves: the policy and plan now in force, and the fields it really changed."""

    policy: ReceiptPolicy
    plan: PlanTier
    changes: tuple[FieldChange, ...]


REASON_MAX_LENGTH = 1000


def _clean_reason(reason) -> str:
    """The reason as stored: a string of at most REASON_MAX_LENGTH characters, or 400.

    NUL and lone surrogates are refused here because the database cannot store them; so is null (the schema
    types reason as a string). Absent is "" (the caller's default).
    """
    message = None
    if not isinstance(reason, str):
        message = "Must be a string."
    elif len(reason) > REASON_MAX_LENGTH:
        message = f"At most {REASON_MAX_LENGTH} characters."
    elif "\x00" in reason or any("\ud800" <= ch <= "\udfff" for ch in reason):
        message = "Must not contain NUL or unpaired surrogate characters."
    if message:
        raise InvalidRequest("reason is not valid.", fields={"reason": [message]})
    return reason


def policy_update(*, actor, app: App, changes: dict, reason: str | None = "") -> PolicyUpdate:
    """Apply a subset of policy fields (and `plan`) all-or-nothing, one audit row per changed field.

    Checks, in this order:
    - unknown field or a non-string reason -> invalid_request;
    - a field outside the actor's roles -> forbidden_field, naming every refused field
      (nothing changes, not even the permitted fields sent beside it);
    - a value of the wrong type or out of range -> invalid_request with `fields`;
    - turning group read acks on while the (new) plan does not include them -> plan_not_eligible;
    - raising the member limit without a reason -> reason_required.
    A downgrade keeps the switch as it is; only the effective value changes.
    Returns the policy and plan in force and the fields that really changed (those audited), sorted by name.
    """
    only_known_fields(changes, BY_NAME, what="policy")
    reason = _clean_reason(reason)
    refused = evaluation.refused_fields(roles=staff_roles(actor), fields=changes)
    if refused:
        raise ForbiddenField(f"Your role may not change: {', '.join(refused)}.")

    plans = {plan.code: plan for plan in PlanTier.objects.all()}
    errors = evaluation.policy_value_errors(changes=changes, plan_codes=plans)
    if errors:
        raise InvalidRequest("Some fields are not valid.", fields=errors)

    with transaction.atomic():
        # Lock the policy and app rows (one SELECT ... FOR UPDATE over the join):
        # two concurrent PATCHes apply one after the other, so each audit row's
        # `old` is the value the change really replaced.
        policy = ReceiptPolicy.objects.select_related("app").select_for_update().get(app_id=app.pk)
        locked_app = policy.app
        plan = plans[changes.get("plan", locked_app.plan_id)]

        if changes.get("group_read_ack_enabled") is True:
            decision = evaluation.group_read_ack_enable_decision(
                requested_on=True, plan_allows=plan.group_read_ack_allowed
            )
            if not decision.allowed:
                raise PlanNotEligible(
                    f"The {plan.name} plan does not include group read receipts; upgrade to Pro or above first."
                )
        if "group_ack_member_limit" in changes:
            decision = evaluation.member_limit_change_decision(
                old_limit=policy.group_ack_member_limit, new_limit=changes["group_ack_member_limit"], reason=reason
            )
            if not decision.allowed:
                raise ReasonRequired(
                    "Raising the group member limit needs a reason.", fields={"reason": ["This field is required."]}
                )

        audited: list[tuple[str, object, object]] = []  # (field, old, new), sorted by field name
        changed_policy_fields = []
        for field, new in sorted(changes.items()):
            old = locked_app.plan_id if field == "plan" else getattr(policy, field)
            if old == new:
                continue  # no change, no audit row
            audited.append((field, old, new))
            if field == "plan":
                locked_app.plan = plan
                locked_app.save(update_fields=["plan"])
            else:
                setattr(policy, field, new)
                changed_policy_fields.append(field)
        if changed_policy_fields:
            policy.updated_at = timezone.now()
            policy.save(update_fields=[*changed_policy_fields, "updated_at"])
        audit_record_many(actor=actor, app=locked_app, changes=audited, reason=reason)
        # Now, so this request's own reads see the change, and again after
        # commit, in case a concurrent reader re-cached the old value meanwhile.
        policy_snapshot_invalidate(app_id=app.pk)
        transaction.on_commit(lambda: policy_snapshot_invalidate(app_id=app.pk))

    # `plans` already holds every plan: no lazy query for the response.
    locked_app.plan = plans[locked_app.plan_id]
    app.plan = locked_app.plan
    return PolicyUpdate(
        policy=policy, plan=locked_app.plan, changes=tuple(FieldChange(field, old, new) for field, old, new in audited)
    )


def app_create(*, org_name: str, app_name: str, plan: str = DEFAULT_PLAN) -> tuple[App, str]:
    """Create an app with its default receipt policy; returns it and the client secret (shown once).

    Here rather than in tenancy: both rows go in one transaction, and policy depends on tenancy, never the reverse.
    Raises invalid_request (names, plan) and duplicate_app.
    """
    app, secret = app_build(org_name=org_name, app_name=app_name, plan=plan)
    try:
        with transaction.atomic():
            app.save(force_insert=True)
            ReceiptPolicy.objects.create(app=app)
    except IntegrityError:
        raise DuplicateApp(f"The app {org_name}#{app_name} already exists.") from None
    return app, secret


GRACE_SECONDS_MAX = 86400


def app_secret_rotate(*, actor, app: App, grace_seconds: int = 0) -> str:
    """Give the app a new client secret (returned, shown once); audited (SPEC §13).

    With grace_seconds the replaced secret is still accepted by the client_credentials grant until then;
    with 0 it stops working at once (app tokens already issued are not revoked). Raises invalid_request.
    """
    is_int = isinstance(grace_seconds, int) and not isinstance(grace_seconds, bool)
    if not is_int or not 0 <= grace_seconds <= GRACE_SECONDS_MAX:
        raise InvalidRequest("grace_seconds is not valid.",
                             fields={"grace_seconds": [f"An integer from 0 to {GRACE_SECONDS_MAX}."]})
    secret = secrets.token_urlsafe(32)
    with transaction.atomic():
        locked = App.objects.select_for_update().get(pk=app.pk)
        locked.previous_secret_hash = locked.client_secret_hash if grace_seconds else ""
        locked.previous_secret_expires_at = (
            timezone.now() + timedelta(seconds=grace_seconds) if grace_seconds else None
        )
        locked.client_secret_hash = hash_token(secret)
        locked.save(update_fields=["client_secret_hash", "previous_secret_hash", "previous_secret_expires_at",
                                   "updated_at"])
        # The secret itself is never stored in the audit log: only that it was rotated, and the grace given.
        audit_record_many(actor=actor, app=locked, changes=[
            ("client_secret", None, {"rotated": True, "grace_seconds": grace_seconds}),
        ])
    return secret


def app_suspension_set(*, actor, app: App, suspended: bool, reason="") -> App:
    """Suspend (reason required) or resume (reason optional) an app (SPEC §13); audited when it changes.

    A suspended app's tokens and token grants get 403 app_suspended (apps/chat); its data is kept, and tokens
    issued before work again after a resume (unless expired). Saving `suspended` drops the app's cached token
    principals in every process (apps/chat/auth.py, post_save of App). Setting the state it already has
    changes nothing and writes no audit row. Raises invalid_request (reason) and reason_required.
    """
    reason = _clean_reason(reason)
    if not evaluation.app_suspension_decision(suspended=suspended, reason=reason).allowed:
        raise ReasonRequired("Suspending an app needs a reason.", fields={"reason": ["This field is required."]})
    with transaction.atomic():
        locked = App.objects.select_for_update().get(pk=app.pk)
        if locked.suspended != suspended:
            old = locked.suspended
            locked.suspended = suspended
            locked.save(update_fields=["suspended", "updated_at"])
            audit_record_many(actor=actor, app=locked, changes=[("suspended", old, suspended)], reason=reason)
    app.suspended = suspended
    return app
