"""policy_update says what it changed: the fields whose value really changed, as the audit rows record them."""

import pytest
from django.contrib.auth import get_user_model

from apps.audit.models import AuditEntry
from apps.policy.services import FieldChange, policy_update

pytestmark = pytest.mark.django_db


@pytest.fixture
def root():
    return get_user_model().objects.create_superuser(username="root", password="correct-horse-battery")


def test_policy_update__returns_the_changed_fields_sorted_with_old_and_new(root, make_app):
    app = make_app(plan="free")
    update = policy_update(
        actor=root,
        app=app,
        reason="upgrade",
        changes={
            "plan": "pro",
            "group_read_ack_enabled": True,
            "group_ack_member_limit": 250,
            "group_ack_sender_scope": "all_members",  # its value already: not a change
        },
    )
    assert update.changes == (
        FieldChange("group_ack_member_limit", 200, 250),
        FieldChange("group_read_ack_enabled", False, True),
        FieldChange("plan", "free", "pro"),
    )
    audited = sorted((e.field, e.old_value, e.new_value) for e in AuditEntry.objects.all())
    assert audited == [(c.field, c.old, c.new) for c in update.changes]
    assert update.plan.code == "pro" and update.policy.group_ack_member_limit == 250


def test_policy_update__values_already_in_force__no_change_reported(root, make_app):
    app = make_app()
    update = policy_update(actor=root, app=app, changes={"group_ack_ttl_days": 3, "plan": "free"})
    assert update.changes == ()
    assert not AuditEntry.objects.exists()


def test_policy_update__old_values_are_the_locked_rows_not_the_callers_copy(root, make_app):
    # The caller's app object is stale (another request changed the policy since it was read): the change
    # reported is against what was really stored, as the audit row is.
    app = make_app()
    stale = type(app).objects.select_related("policy", "plan").get(pk=app.pk)
    policy_update(actor=root, app=app, changes={"group_ack_ttl_days": 5})
    update = policy_update(actor=root, app=stale, changes={"group_ack_ttl_days": 7})
    assert stale.policy.group_ack_ttl_days == 3  # what the caller had read
    assert update.changes == (FieldChange("group_ack_ttl_days", 5, 7),)
