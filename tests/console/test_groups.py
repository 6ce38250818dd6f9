"""The group look-up and a group's own receipt settings (SPEC §12) on the console: every role, every refusal, every
change through apps.chat.services (audited), the send reading what the console saved."""

import html

import pytest

from apps.audit.models import AuditEntry
from apps.chat.models import GroupReceiptOverride
from apps.chat.services import group_create, group_receipt_policy_set
from apps.policy.services import policy_update
from tests.receipts.conftest import World

from .prg import refused

SETTINGS = {"group_read_ack": "inherit", "group_ack_member_limit": "", "reason": ""}


@pytest.fixture
def world(make_app, superuser):
    """A Pro app with group read receipts on (limit 200) and a group "Support team" of three, alice its owner."""
    app = make_app(plan="pro")
    policy_update(actor=superuser, app=app, changes={"group_read_ack_enabled": True})
    world = World(app)
    world.group_row = world.group("alice", members=["bob", "carol"], admins=["bob"])
    world.group_row.name = "Support team"
    world.group_row.save(update_fields=["name"])
    return world


def _url(world, suffix=""):
    return f"/console/apps/{world.app.org_name}/{world.app.app_name}/{suffix}"


def _group_url(world, suffix="", group_id=None):
    return _url(world, f"groups/{group_id or world.group_row.group_id}/{suffix}")


def _body(response) -> str:
    return html.unescape(response.content.decode())


def _override(world):
    return GroupReceiptOverride.objects.filter(group=world.group_row).values_list(
        "group_read_ack", "group_ack_member_limit").first()


def _group_audit(world):
    return list(AuditEntry.objects.filter(field__startswith=f"group:{world.group_row.group_id}.").order_by("id")
                .values_list("actor_username", "field", "old_value", "new_value", "reason"))


# --- the look-up on the app page


@pytest.mark.parametrize("role", ["operator", "business", "superuser"])
def test_app_page__every_role_gets_the_group_look_up(request, world, role):
    client = request.getfixturevalue(f"{role}_console")
    body = _body(client.get(_url(world)))
    assert 'data-testid="group-lookup-form"' in body and f'action="{_url(world, "groups/")}"' in body


@pytest.mark.parametrize("role", ["operator", "business", "superuser"])
def test_look_up__exact_group_id__straight_to_the_group_page_for_every_role(request, world, role):
    client = request.getfixturevalue(f"{role}_console")
    response = client.get(_url(world, "groups/"), {"q": f" {world.group_row.group_id} "})
    assert response.status_code == 302 and response["Location"] == _group_url(world)


def test_group_pages__signed_out__to_the_login_page_no_role__403(client, world, django_user_model):
    for url in (_url(world, "groups/?q=team"), _group_url(world), _group_url(world, "delete/")):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/console/login/?next=")
    assert client.post(_group_url(world), {**SETTINGS, "group_read_ack": "off"}).status_code == 302
    client.force_login(django_user_model.objects.create_user(username="nobody", password="x"))
    assert client.get(_group_url(world)).status_code == 403
    assert client.post(_group_url(world), {**SETTINGS, "group_read_ack": "off"}).status_code == 403
    assert _override(world) is None


def test_look_up__part_of_the_name__listed_case_insensitively(operator_console, world):
    group_create(app=world.app, name="Sales", owner="carol", members=[])
    response = operator_console.get(_url(world, "groups/"), {"q": "SUPPORT"})
    assert response.status_code == 200
    assert [group.name for group in response.context["groups"]] == ["Support team"]
    body = _body(response)
    assert _group_url(world) in body and "alice" in body and "The app's" in body
    assert response["Cache-Control"] == "no-store"


def test_look_up__a_group_with_its_own_settings_says_so(operator_console, world, business_user):
    group_receipt_policy_set(actor=business_user, app=world.app, group_id=world.group_row.group_id,
                             group_read_ack="off", group_ack_member_limit=None)
    assert "Its own" in _body(operator_console.get(_url(world, "groups/"), {"q": "team"}))


@pytest.mark.parametrize("q", ["nobody", "x" * 129, "bad\x00id"])
def test_look_up__nothing_matches__said_plainly(operator_console, world, q):
    response = operator_console.get(_url(world, "groups/"), {"q": q})
    assert response.status_code == 200 and response.context["groups"] == []


def test_look_up__no_match__empty_state(operator_console, world):
    assert "No group matches “nobody”" in _body(operator_console.get(_url(world, "groups/"), {"q": "nobody"}))
    assert "Enter a group ID" in _body(operator_console.get(_url(world, "groups/")))


def test_look_up__another_apps_group_is_not_found(operator_console, world, make_app):
    other = World(make_app(org_name="globex", app_name="chat", plan="pro"))
    theirs = other.group("zed")
    response = operator_console.get(_url(world, "groups/"), {"q": theirs.group_id})
    assert response.status_code == 200 and response.context["groups"] == []
    assert operator_console.get(_group_url(world, group_id=theirs.group_id)).status_code == 404


def test_look_up__bounded_to_20_matches_in_a_fixed_number_of_queries(operator_console, world,
                                                                     django_assert_num_queries):
    for n in range(25):
        group_create(app=world.app, name=f"Team {n:02d}", owner="alice", members=[])
    # session, user, groups (roles), app with plan and policy, the matching groups with owner and override
    with django_assert_num_queries(5):
        response = operator_console.get(_url(world, "groups/"), {"q": "team"})
    assert len(response.context["groups"]) == 20 and response.context["more"]
    assert "Only the first 20 matches" in _body(response)


# --- the group's page


@pytest.mark.parametrize("role", ["operator", "business", "superuser"])
def test_group_page__every_role_sees_the_group_and_what_is_in_force(request, world, role):
    client = request.getfixturevalue(f"{role}_console")
    response = client.get(_group_url(world))
    assert response.status_code == 200
    body = _body(response)
    assert "Support team" in body and world.group_row.group_id in body
    assert 'data-testid="group-owner">alice<' in body and 'data-testid="group-members">3<' in body
    assert "On, as for the whole app" in body
    assert "The app's limit." in body and "This group has 3 members: within its limit." in body
    assert "Messages sent here with need_group_ack get read receipts." in body
    assert "The app's settings" in body


def test_group_page__business_and_superuser_get_the_form_operators_do_not(operator_console, business_console,
                                                                         superuser_console, world):
    for client in (business_console, superuser_console):
        body = _body(client.get(_group_url(world)))
        assert 'data-testid="group-override-form"' in body and 'name="group_ack_member_limit"' in body
        assert 'placeholder="The app\'s: 200"' in body
    body = _body(operator_console.get(_group_url(world)))
    assert "<form method=\"post\" action=\"" + _group_url(world) not in body
    assert 'name="group_read_ack"' not in body and 'name="reason"' not in body
    assert "Business staff change a group's own settings." in body and "The app's (200 members)" in body


def test_group_page__query_count_is_fixed(business_console, world, django_assert_num_queries):
    for n in range(10):
        world.join(world.group_row, f"member{n}")
    # session, user, groups (roles), app with plan and policy, the group with its owner and override
    with django_assert_num_queries(5):
        response = business_console.get(_group_url(world))
    assert response.status_code == 200 and response.context["group"].member_count == 13


def test_group_page__unknown_group__404(operator_console, world):
    assert operator_console.get(_group_url(world, group_id="nope")).status_code == 404
    assert operator_console.get(_url(world, "groups/bad%00id/")).status_code == 404
    assert operator_console.get(_url(world, f"groups/{'9' * 65}/")).status_code == 404
    assert operator_console.get(f"/console/apps/acme/none/groups/{world.group_row.group_id}/").status_code == 404


def test_group_page__its_own_settings_in_words(operator_console, world, business_user):
    group_receipt_policy_set(actor=business_user, app=world.app, group_id=world.group_row.group_id,
                             group_read_ack="off", group_ack_member_limit=2)
    body = _body(operator_console.get(_group_url(world)))
    assert "Off for this group only (its own setting)" in body
    assert "This group's own limit (the app's is 200 members)." in body
    assert "This group has 3 members, more than its limit" in body
    assert "get no read receipts: group read receipts are off for it (feature_disabled)." in body
    assert "Its own settings" in body and "Off for this group" in body


def test_group_page__app_switched_off__a_group_cannot_turn_it_on(operator_console, world, superuser):
    policy_update(actor=superuser, app=world.app, changes={"group_read_ack_enabled": False})
    body = _body(operator_console.get(_group_url(world)))
    assert "Off for the whole app: an operator has switched them off." in body
    policy_update(actor=superuser, app=world.app, changes={"plan": "free"})
    assert "the Free plan does not include them" in _body(operator_console.get(_group_url(world)))


def test_group_page__owners_and_admins_only__said(operator_console, world, superuser):
    policy_update(actor=superuser, app=world.app, changes={"group_ack_sender_scope": "owners_and_admins"})
    body = _body(operator_console.get(_group_url(world)))
    assert "Only the group's owner and admins may ask" in body
    assert "Messages from its owner and admins sent here with need_group_ack get read receipts." in body


# --- setting the override (business staff and superusers)


def test_set__off__saved_audited_and_read_by_the_next_send(business_console, world):
    response = business_console.post(_group_url(world), {**SETTINGS, "group_read_ack": "off", "reason": "pilot"})
    assert response.status_code == 302 and response["Location"] == _group_url(world)
    assert _override(world) == ("off", None)
    assert _group_audit(world) == [("bianca", f"group:{world.group_row.group_id}.group_read_ack", "inherit", "off",
                                    "pilot")]
    body = _body(business_console.get(response["Location"]))
    assert "Saved for group “Support team”: group read receipts as the app → off for this group." in body
    alice = world.login("alice")
    message = world.send_group(alice, world.group_row)
    assert message.need_group_ack is False  # feature_disabled, from the console's override


def test_set__limit_above_the_apps_without_a_reason__refused_on_the_form_nothing_changed(business_console, world):
    data = {**SETTINGS, "group_ack_member_limit": "500"}
    response = refused(business_console, _group_url(world), data, to=_group_url(world))
    body = _body(response)
    assert "Please give a reason: a member limit above the app's (200 members) needs one. Nothing was changed." in body
    assert response.context["form"].errors["reason"] == ["This field is required."]
    assert 'value="500"' in body  # the form comes back as sent, the problem marked
    assert _override(world) is None and _group_audit(world) == []
    # Reloaded, the group's page is shown afresh: the form as saved, no error.
    again = business_console.get(_group_url(world))
    assert again.status_code == 200 and not again.context["form"].errors and 'value="500"' not in _body(again)


def test_set__limit_above_the_apps_with_a_reason__saved(business_console, world):
    response = business_console.post(_group_url(world), {**SETTINGS, "group_ack_member_limit": "500",
                                                         "reason": "Big customer group"}, follow=True)
    assert response.status_code == 200
    assert _override(world) == ("inherit", 500)
    assert _group_audit(world) == [("bianca", f"group:{world.group_row.group_id}.group_ack_member_limit", None, 500,
                                    "Big customer group")]
    body = _body(response)
    assert "member limit the app's → 500 members" in body
    assert "This group's own limit (the app's is 200 members)." in body


def test_set__limit_below_the_apps__needs_no_reason(business_console, world):
    assert business_console.post(_group_url(world), {**SETTINGS, "group_ack_member_limit": "2"}).status_code == 302
    assert _override(world) == ("inherit", 2)
    alice = world.login("alice")
    assert world.send_group(alice, world.group_row).need_group_ack is False  # group_too_large


@pytest.mark.parametrize("changes, field", [
    ({"group_ack_member_limit": "1"}, "group_ack_member_limit"),
    ({"group_ack_member_limit": "100001", "reason": "x"}, "group_ack_member_limit"),
    ({"group_ack_member_limit": "abc"}, "group_ack_member_limit"),
    ({"group_read_ack": "on"}, "group_read_ack"),
    ({"reason": "x" * 1001}, "reason"),
])
def test_set__bad_values__refused_field_marked_nothing_changed(business_console, world, changes, field):
    response = refused(business_console, _group_url(world), {**SETTINGS, **changes}, to=_group_url(world))
    assert response.context["form"].errors[field]
    assert "Some values are not valid; see the highlighted fields. Nothing was changed." in _body(response)
    assert _override(world) is None and _group_audit(world) == []


def test_set__the_same_values__nothing_to_save_no_audit(business_console, world):
    response = business_console.post(_group_url(world), SETTINGS, follow=True)
    assert "Nothing to save: these are the group's settings already." in _body(response)
    assert _group_audit(world) == []


def test_set__inherit_and_blank__the_override_is_dropped(business_console, world, business_user):
    group_receipt_policy_set(actor=business_user, app=world.app, group_id=world.group_row.group_id,
                             group_read_ack="off", group_ack_member_limit=50)
    assert business_console.post(_group_url(world), SETTINGS).status_code == 302
    assert _override(world) is None
    assert [row[2:4] for row in _group_audit(world)][-2:] == [("off", "inherit"), (50, None)]


def test_set__superuser__allowed(superuser_console, world):
    assert superuser_console.post(_group_url(world), {**SETTINGS, "group_read_ack": "off"}).status_code == 302
    assert _override(world) == ("off", None) and _group_audit(world)[0][0] == "sam"


def test_set__operator_forged_post__403_nothing_changed(operator_console, world):
    response = operator_console.post(_group_url(world), {**SETTINGS, "group_read_ack": "off"})
    assert response.status_code == 403
    assert "Only business staff change a group's receipt settings." in _body(response)
    assert _override(world) is None and _group_audit(world) == []


def test_set__unknown_group__404(business_console, world):
    assert business_console.post(_group_url(world, group_id="nope"), SETTINGS).status_code == 404


# --- "use the app's settings" (delete, with a confirmation)


def test_delete__confirmation_then_the_group_inherits_again(business_console, world, business_user):
    group_receipt_policy_set(actor=business_user, app=world.app, group_id=world.group_row.group_id,
                             group_read_ack="off", group_ack_member_limit=500, reason="pilot")
    assert "Use the app's settings…" in _body(business_console.get(_group_url(world)))
    confirm = business_console.get(_group_url(world, "delete/"))
    assert confirm.status_code == 200
    body = _body(confirm)
    assert 'data-testid="confirm"' in body and "500 members" in body and "200 members" in body
    assert _override(world) is not None  # asking changes nothing
    response = business_console.post(_group_url(world, "delete/"), follow=True)
    assert response.redirect_chain == [(_group_url(world), 302)]
    assert "Group “Support team” uses the app's settings again." in _body(response)
    assert _override(world) is None
    assert [row[1:4] for row in _group_audit(world)][-2:] == [
        (f"group:{world.group_row.group_id}.group_read_ack", "off", "inherit"),
        (f"group:{world.group_row.group_id}.group_ack_member_limit", 500, None),
    ]
    # Again: nothing to drop, nothing audited.
    again = business_console.post(_group_url(world, "delete/"), follow=True)
    assert "already uses the app's settings" in _body(again) and len(_group_audit(world)) == 4


def test_delete__superuser__allowed(superuser_console, world, business_user):
    group_receipt_policy_set(actor=business_user, app=world.app, group_id=world.group_row.group_id,
                             group_read_ack="off", group_ack_member_limit=None)
    assert superuser_console.get(_group_url(world, "delete/")).status_code == 200
    assert superuser_console.post(_group_url(world, "delete/")).status_code == 302
    assert _override(world) is None and _group_audit(world)[-1][:4] == (
        "sam", f"group:{world.group_row.group_id}.group_read_ack", "off", "inherit")


def test_delete__no_override__no_button_and_the_confirmation_says_so(business_console, world):
    assert "Use the app's settings…" not in _body(business_console.get(_group_url(world)))
    assert "it already uses the app's" in _body(business_console.get(_group_url(world, "delete/")))


def test_delete__operator__403_for_the_confirmation_and_a_forged_post(operator_console, world, business_user):
    group_receipt_policy_set(actor=business_user, app=world.app, group_id=world.group_row.group_id,
                             group_read_ack="off", group_ack_member_limit=None)
    assert operator_console.get(_group_url(world, "delete/")).status_code == 403
    assert operator_console.post(_group_url(world, "delete/")).status_code == 403
    assert _override(world) == ("off", None)


def test_delete__unknown_group__404(business_console, world):
    assert business_console.post(_group_url(world, "delete/", group_id="nope")).status_code == 404


# --- the audit trail reads group overrides in words


def test_audit__group_override_rows_in_words_with_a_link_to_the_group(operator_console, world, business_user):
    group_id = world.group_row.group_id
    group_receipt_policy_set(actor=business_user, app=world.app, group_id=group_id, group_read_ack="off",
                             group_ack_member_limit=800, reason="Big customer group")
    body = _body(operator_console.get(_url(world, "audit/")))
    assert f"Group {group_id}: group read receipts" in body and f"Group {group_id}: member limit" in body
    assert 'as the app<span class="arrow">→</span><strong>off for this group</strong>' in body
    assert 'the app\'s<span class="arrow">→</span><strong>800 members</strong>' in body
    assert f'href="{_group_url(world)}"' in body and "Big customer group" in body
    recent = _body(operator_console.get(_url(world)))  # the Settings tab's recent changes too
    assert f"Group {group_id}: member limit" in recent
