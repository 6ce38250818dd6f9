"""The app page's Webhooks tab (SPEC §10): endpoints, their state and their newest deliveries for every staff
member; add, enable/disable, test, redeliver, rotate and delete for operators and superusers only, every change
through apps.webhooks.services (audited). Django test client, every view and every role."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.audit.models import AuditEntry
from apps.webhooks.models import EVENT_TYPES, WebhookDelivery, WebhookEndpoint
from apps.webhooks.services import (
    WebhookEvent,
    endpoint_create,
    endpoint_update,
    webhook_deliveries_enqueue,
    webhook_deliveries_post_due,
)
from tests.webhooks.receiver import Answer

from .prg import refused

pytestmark = pytest.mark.django_db

# A public address literal: it "resolves" without DNS, and nothing here posts to it (no sweep runs).
PUBLIC_URL = "https://93.184.216.34/receipts"


def _url(app, suffix=""):
    return f"/console/apps/{app.org_name}/{app.app_name}/webhooks/{suffix}"


@pytest.fixture
def app(make_app):
    return make_app(plan="pro")


def _endpoint(app, actor, *, url=PUBLIC_URL, event_types=("message.read",), description=""):
    endpoint, _ = endpoint_create(actor=actor, app=app, url=url, event_types=list(event_types),
                                  description=description)
    return endpoint


@pytest.fixture
def endpoint(app, superuser):
    return _endpoint(app, superuser, event_types=EVENT_TYPES, description="CRM")


def _enqueue(app, *event_ids, event_type="message.read"):
    return webhook_deliveries_enqueue(
        app_id=app.pk, app_key=app.app_key, event_type=event_type,
        events=[WebhookEvent(event_id=e, timestamp=1_700_000_000_000, data={"message_id": e}) for e in event_ids],
    )


def _body(response) -> str:
    return response.content.decode()


def _messages(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


# --------------------------------------------------------------------------- the tab


def test_tab__every_page_of_the_app_links_it(business_console, app):
    body = _body(business_console.get(f"/console/apps/{app.org_name}/{app.app_name}/"))
    assert f'href="{_url(app)}"' in body and ">Webhooks</a>" in body


def test_tab__operator__endpoints_with_their_controls(operator_console, endpoint, app):
    response = operator_console.get(_url(app))
    assert response.status_code == 200
    body = _body(response)
    assert PUBLIC_URL in body and "CRM" in body
    for event_type in EVENT_TYPES:
        assert event_type in body
    assert "Enabled" in body
    assert f'href="{_url(app, "new/")}"' in body
    for action in ("test/", "enabled/"):
        assert f'action="{_url(app, f"{endpoint.pk}/{action}")}"' in body
    for link in ("rotate/", "delete/"):
        assert f'href="{_url(app, f"{endpoint.pk}/{link}")}"' in body
    assert endpoint.secret not in body
    assert response["Cache-Control"] == "no-store"


def test_tab__superuser__the_same_controls(superuser_console, endpoint, app):
    body = _body(superuser_console.get(_url(app)))
    assert f'action="{_url(app, f"{endpoint.pk}/test/")}"' in body and f'href="{_url(app, "new/")}"' in body


def test_tab__business__read_only_no_control_offered(business_console, endpoint, app):
    _enqueue(app, "evt_1")
    response = business_console.get(_url(app))
    assert response.status_code == 200
    body = _body(response)
    assert PUBLIC_URL in body and "message.read" in body
    assert len(response.context["endpoints"][0]["deliveries"]) == 1
    assert "/webhooks/new/" not in body
    assert f"/webhooks/{endpoint.pk}/" not in body  # no test, enable, rotate, delete or redeliver
    assert "<form" not in body.split("</header>", 1)[1]  # the sign-out form is the page's only one
    assert "Operators add, test, rotate, disable and delete endpoints." in body
    assert endpoint.secret not in body


def test_tab__anonymous__sent_to_sign_in(client, app):
    response = client.get(_url(app))
    assert response.status_code == 302
    assert response["Location"].startswith("/console/login/?next=")


def test_tab__no_endpoints__empty_state(operator_console, business_console, app):
    assert "Add the first endpoint" in _body(operator_console.get(_url(app)))
    body = _body(business_console.get(_url(app)))
    assert "No webhook endpoints" in body and "Add the first endpoint" not in body


def test_tab__unknown_app__404(operator_console, db):
    assert operator_console.get("/console/apps/acme/none/webhooks/").status_code == 404


def test_tab__only_this_apps_endpoints(operator_console, superuser, app, make_app):
    other = make_app(org_name="globex", app_name="chat")
    _endpoint(other, superuser, url="https://93.184.216.34/globex")
    _endpoint(app, superuser)
    rows = operator_console.get(_url(app)).context["endpoints"]
    assert [row["url"] for row in rows] == [PUBLIC_URL]


def test_tab__deliveries__the_20_newest_per_endpoint_newest_first(operator_console, superuser, app):
    first = _endpoint(app, superuser, event_types=["message.read"])
    second = _endpoint(app, superuser, url="https://93.184.216.34/second", event_types=["conversation.read"])
    _enqueue(app, *[f"evt_{n:02}" for n in range(25)])
    _enqueue(app, "conv_1", "conv_2", event_type="conversation.read")
    rows = operator_console.get(_url(app)).context["endpoints"]
    assert [row["id"] for row in rows] == [first.pk, second.pk]  # oldest endpoint first, like the API
    assert [d["event_id"] for d in rows[0]["deliveries"]] == [f"evt_{n:02}" for n in range(24, 4, -1)]
    assert [d["event_id"] for d in rows[1]["deliveries"]] == ["conv_2", "conv_1"]


def test_tab__delivery_outcomes_from_real_posts(operator_console, superuser, app, receiver):
    """A real receiver answers 503 with a body, then 200: each outcome is shown as the sweep recorded it."""
    endpoint = _endpoint(app, superuser, url=receiver.url())
    receiver.answer(Answer(status=503, body=b"upstream unavailable"), 200)
    _enqueue(app, "evt_failing")
    webhook_deliveries_post_due()
    _enqueue(app, "evt_ok")
    webhook_deliveries_post_due()
    response = operator_console.get(_url(app))
    ok, failing = response.context["endpoints"][0]["deliveries"]
    assert (ok["event_id"], ok["status"], ok["tone"], ok["attempts"], ok["last_status_code"], ok["last_error"]) == (
        "evt_ok", "delivered", "on", 1, 200, "")
    assert ok["delivered_at"] is not None and ok["next_attempt_at"] is None
    assert (failing["status"], failing["tone"], failing["attempts"], failing["last_status_code"]) == (
        "pending", "warn", 1, 503)
    assert failing["last_error"] == "upstream unavailable" and failing["next_attempt_at"] is not None
    assert failing["delivered_at"] is None
    body = _body(response)
    assert "upstream unavailable" in body and "503" in body and f"msg_{ok['id']}" in body
    assert body.count('data-testid="delivery"') == 2
    assert body.count(f'action="{_url(app, f"{endpoint.pk}/deliveries/")}') == 2  # a Redeliver button each


def test_tab__endpoint_the_server_disabled__failing_or_gone_shown_clearly(operator_console, superuser, app, receiver):
    failing = _endpoint(app, superuser, url=receiver.url("/failing"))
    gone = _endpoint(app, superuser, url=receiver.url("/gone"), event_types=["conversation.read"])
    WebhookEndpoint.objects.filter(pk=failing.pk).update(failing_since=timezone.now() - timedelta(days=5, minutes=1))
    receiver.answer(500)
    _enqueue(app, "evt_1")
    webhook_deliveries_post_due()
    receiver.answer(410)
    _enqueue(app, "conv_1", event_type="conversation.read")
    webhook_deliveries_post_due()
    response = operator_console.get(_url(app))
    rows = {row["id"]: row for row in response.context["endpoints"]}
    assert (rows[failing.pk]["disabled_reason"], rows[failing.pk]["state"].badge) == ("failing", "Disabled — failing")
    assert rows[failing.pk]["state"].sentence.startswith("Disabled by the server: every attempt failed for 5 days.")
    assert (rows[gone.pk]["disabled_reason"], rows[gone.pk]["state"].badge) == ("gone", "Disabled — gone")
    assert "answered 410 Gone" in rows[gone.pk]["state"].sentence
    body = _body(response)
    assert "Disabled — failing" in body and "Disabled — gone" in body
    assert body.count('class="badge state-err" data-testid="endpoint-state"') == 2
    assert body.count('<input type="hidden" name="value" value="on">') == 2  # an Enable button each


def test_tab__at_the_limit__add_not_offered(operator_console, superuser, app):
    for n in range(10):
        _endpoint(app, superuser, url=f"https://93.184.216.34/{n}")
    body = _body(operator_console.get(_url(app)))
    assert "An app has at most 10 endpoints: delete one to add another." in body
    assert f'href="{_url(app, "new/")}"' not in body


@pytest.mark.parametrize("endpoints", [1, 4])
def test_tab__query_count_fixed_whatever_the_endpoints_and_deliveries(
    operator_console, superuser, app, endpoints, django_assert_num_queries
):
    for n in range(endpoints):
        _endpoint(app, superuser, url=f"https://93.184.216.34/{n}", event_types=EVENT_TYPES)
    for kind in EVENT_TYPES:
        _enqueue(app, *[f"{kind}-{n}" for n in range(12)], event_type=kind)  # 48 per endpoint
    # session, user, groups (roles), app with plan and policy, the endpoints, the deliveries of them all
    with django_assert_num_queries(6):
        response = operator_console.get(_url(app))
    assert len(response.context["endpoints"]) == endpoints
    assert all(len(row["deliveries"]) == 20 for row in response.context["endpoints"])


def test_tab__no_endpoint__no_delivery_query(operator_console, app, django_assert_num_queries):
    with django_assert_num_queries(5):
        operator_console.get(_url(app))


# --------------------------------------------------------------------------- add an endpoint


def test_new__form_for_operator_and_superuser(operator_console, superuser_console, app):
    for console in (operator_console, superuser_console):
        response = console.get(_url(app, "new/"))
        assert response.status_code == 200
        body = _body(response)
        assert 'name="url"' in body and 'name="description"' in body
        assert body.count('type="checkbox" name="event_types"') == len(EVENT_TYPES)
        assert body.count("checked") == len(EVENT_TYPES)  # every type ticked to begin with


def test_new__operator_adds__secret_shown_once__audited(operator_console, operator_user, app):
    response = operator_console.post(_url(app, "new/"), {
        "url": PUBLIC_URL, "event_types": ["message.read", "group_message.read"], "description": "CRM"})
    assert response.status_code == 201
    endpoint = WebhookEndpoint.objects.get(app=app)
    assert (endpoint.url, endpoint.event_types, endpoint.description, endpoint.enabled) == (
        PUBLIC_URL, ["message.read", "group_message.read"], "CRM", True)
    secret = response.context["secret"]
    assert secret == endpoint.secret and secret.startswith("whsec_")
    body = _body(response)
    assert secret in body and "This is the only time it is shown." in body
    assert response["Cache-Control"] == "no-store"
    entry = AuditEntry.objects.get(app=app)
    assert (entry.actor, entry.field, entry.old_value) == (operator_user, f"webhook:{endpoint.pk}", None)
    assert secret not in str(entry.new_value)
    # Never again: not on the tab, not in the audit trail.
    assert secret not in _body(operator_console.get(_url(app)))
    assert secret not in _body(operator_console.get(f"/console/apps/{app.org_name}/{app.app_name}/audit/"))


def test_new__superuser_adds(superuser_console, app):
    response = superuser_console.post(_url(app, "new/"), {"url": PUBLIC_URL, "event_types": ["message.read"]})
    assert response.status_code == 201
    assert WebhookEndpoint.objects.filter(app=app, description="").count() == 1


def test_new__business__403_for_the_form_and_a_forged_post(business_console, app):
    response = business_console.get(_url(app, "new/"))
    assert response.status_code == 403
    assert "Only operators change webhook endpoints." in _body(response)
    response = business_console.post(_url(app, "new/"), {"url": PUBLIC_URL, "event_types": ["message.read"]})
    assert response.status_code == 403
    assert not WebhookEndpoint.objects.exists() and not AuditEntry.objects.exists()


def test_new__anonymous__sent_to_sign_in_nothing_added(client, app):
    assert client.get(_url(app, "new/")).status_code == 302
    response = client.post(_url(app, "new/"), {"url": PUBLIC_URL, "event_types": ["message.read"]})
    assert response.status_code == 302 and response["Location"].startswith("/console/login/")
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.parametrize("url,message", [
    ("https://10.0.0.1/hook", "WEBHOOK_ALLOW_PRIVATE_NETWORKS"),
    ("https://127.0.0.1/hook", "WEBHOOK_ALLOW_PRIVATE_NETWORKS"),
    ("http://93.184.216.34/hook", "WEBHOOK_ALLOW_HTTP"),
    ("https://user:pw@93.184.216.34/hook", "no user info"),
    ("ftp://93.184.216.34/hook", "Must be an https:// URL"),
])
def test_new__refused_url__on_the_form_nothing_added(operator_console, app, url, message):
    data = {"url": url, "event_types": ["message.read"], "description": "CRM"}
    response = refused(operator_console, _url(app, "new/"), data, to=_url(app, "new/"))
    form = response.context["form"]
    assert message in form.errors["url"][0]
    body = _body(response)
    assert message in body and 'value="CRM"' in body  # the form comes back as sent, the problem marked
    assert not WebhookEndpoint.objects.exists() and not AuditEntry.objects.exists()
    # Reloaded, the page is the empty form again.
    again = operator_console.get(_url(app, "new/"))
    assert again.status_code == 200 and not again.context["form"].is_bound and "errorlist" not in _body(again)


def test_new__host_that_does_not_resolve__refused_fields_url(operator_console, app):
    response = refused(operator_console, _url(app, "new/"), {"url": "https://receipts.invalid/hook",
                                                             "event_types": ["message.read"]}, to=_url(app, "new/"))
    assert response.context["form"].errors["url"]


def test_new__private_address_allowed_by_the_settings__added(operator_console, app, local_network):
    response = operator_console.post(_url(app, "new/"), {"url": "http://127.0.0.1:9/hook",
                                                         "event_types": ["message.read"]})
    assert response.status_code == 201


@pytest.mark.parametrize("data,field,message", [
    ({"url": PUBLIC_URL}, "event_types", "At least one."),
    ({"url": PUBLIC_URL, "event_types": ["message.sent"]}, "event_types", "Select a valid choice."),
    ({"event_types": ["message.read"]}, "url", "This field is required."),
    ({"url": PUBLIC_URL + "/" + "x" * 2048, "event_types": ["message.read"]}, "url", "at most 2048 characters"),
    ({"url": PUBLIC_URL, "event_types": ["message.read"], "description": "d" * 501}, "description",
     "at most 500 characters"),
])
def test_new__invalid__refused_with_the_field_marked(operator_console, app, data, field, message):
    response = refused(operator_console, _url(app, "new/"), data, to=_url(app, "new/"))
    assert message in response.context["form"].errors[field][0]
    assert not WebhookEndpoint.objects.exists()


def test_new__eleventh__refused_limit_reached_on_the_form(operator_console, superuser, app):
    for n in range(10):
        _endpoint(app, superuser, url=f"https://93.184.216.34/{n}")
    response = refused(operator_console, _url(app, "new/"), {"url": PUBLIC_URL, "event_types": ["message.read"]},
                       to=_url(app, "new/"))
    assert response.context["form"].non_field_errors() == ["An app has at most 10 webhook endpoints."]
    assert "An app has at most 10 webhook endpoints." in _body(response)
    assert WebhookEndpoint.objects.filter(app=app).count() == 10


def test_new__unknown_app__404(operator_console, db):
    assert operator_console.get("/console/apps/acme/none/webhooks/new/").status_code == 404
    assert operator_console.post("/console/apps/acme/none/webhooks/new/", {"url": PUBLIC_URL}).status_code == 404


# --------------------------------------------------------------------------- enable / disable


def test_enabled__operator_disables_then_enables__audited(operator_console, operator_user, endpoint, app):
    response = operator_console.post(_url(app, f"{endpoint.pk}/enabled/"), {"value": "off"}, follow=True)
    assert response.redirect_chain == [(_url(app) + f"#endpoint-{endpoint.pk}", 302)]
    assert f"{PUBLIC_URL} disabled" in _messages(response)[0]
    endpoint.refresh_from_db()
    assert (endpoint.enabled, endpoint.disabled_reason) == (False, "manual")
    assert response.context["endpoints"][0]["state"].badge == "Disabled"
    entry = AuditEntry.objects.get(field=f"webhook:{endpoint.pk}.enabled")
    assert (entry.actor, entry.old_value, entry.new_value) == (operator_user, True, False)

    response = operator_console.post(_url(app, f"{endpoint.pk}/enabled/"), {"value": "on"}, follow=True)
    assert f"{PUBLIC_URL} enabled: its pending deliveries are posted again." in _messages(response)
    endpoint.refresh_from_db()
    assert (endpoint.enabled, endpoint.disabled_reason) == (True, None)


def test_enabled__superuser_enables_an_endpoint_the_server_disabled(superuser_console, endpoint, app):
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(enabled=False, disabled_reason="failing")
    superuser_console.post(_url(app, f"{endpoint.pk}/enabled/"), {"value": "on"})
    endpoint.refresh_from_db()
    assert (endpoint.enabled, endpoint.disabled_reason) == (True, None)


def test_enabled__already_so__told_no_audit_row(operator_console, endpoint, app):
    response = operator_console.post(_url(app, f"{endpoint.pk}/enabled/"), {"value": "on"}, follow=True)
    assert _messages(response) == [f"{PUBLIC_URL} was already enabled."]
    assert not AuditEntry.objects.filter(field__endswith=".enabled").exists()


@pytest.mark.parametrize("data", [{"value": "maybe"}, {}])
def test_enabled__malformed__nothing_changed(operator_console, endpoint, app, data):
    response = operator_console.post(_url(app, f"{endpoint.pk}/enabled/"), data, follow=True)
    assert "Nothing was changed." in _messages(response)[0]
    endpoint.refresh_from_db()
    assert endpoint.enabled


def test_enabled__business_forged_post__403(business_console, endpoint, app):
    response = business_console.post(_url(app, f"{endpoint.pk}/enabled/"), {"value": "off"})
    assert response.status_code == 403
    endpoint.refresh_from_db()
    assert endpoint.enabled and not AuditEntry.objects.filter(field__endswith=".enabled").exists()


def test_enabled__anonymous__sent_to_sign_in(client, endpoint, app):
    assert client.post(_url(app, f"{endpoint.pk}/enabled/"), {"value": "off"}).status_code == 302
    endpoint.refresh_from_db()
    assert endpoint.enabled


def test_enabled__get__405(operator_console, endpoint, app):
    assert operator_console.get(_url(app, f"{endpoint.pk}/enabled/")).status_code == 405


def test_buttons__unknown_or_another_apps_endpoint__404(operator_console, superuser, endpoint, app, make_app):
    other = _endpoint(make_app(org_name="globex", app_name="chat"), superuser)
    for endpoint_id in (endpoint.pk + 1000, other.pk, 2**63):
        for suffix in ("enabled/", "test/", "rotate/", "delete/", "deliveries/1/redeliver/"):
            response = operator_console.post(_url(app, f"{endpoint_id}/{suffix}"), {"value": "off"})
            assert response.status_code == 404, (endpoint_id, suffix)
    other.refresh_from_db()
    assert other.enabled and WebhookEndpoint.objects.count() == 2


# --------------------------------------------------------------------------- send a test


def test_test__operator__a_webhook_test_delivery_listed(operator_console, endpoint, app):
    response = operator_console.post(_url(app, f"{endpoint.pk}/test/"), follow=True)
    delivery = WebhookDelivery.objects.get(endpoint=endpoint)
    assert delivery.event_type == "webhook.test" and delivery.status == "pending"
    assert response.redirect_chain == [(_url(app) + f"#endpoint-{endpoint.pk}", 302)]
    assert _messages(response) == [f"Test delivery msg_{delivery.pk} queued for {PUBLIC_URL}: it is posted "
                                   "within seconds."]
    [row] = response.context["endpoints"][0]["deliveries"]
    assert (row["id"], row["event_type"], row["status"]) == (delivery.pk, "webhook.test", "pending")


def test_test__posted_to_a_real_receiver_and_shown_delivered(superuser_console, superuser, app, receiver):
    endpoint = _endpoint(app, superuser, url=receiver.url())
    superuser_console.post(_url(app, f"{endpoint.pk}/test/"))
    assert webhook_deliveries_post_due() == 1
    [request] = receiver.wait_for(1)
    assert request.verified_by(endpoint.secret)["type"] == "webhook.test"
    [row] = superuser_console.get(_url(app)).context["endpoints"][0]["deliveries"]
    assert (row["status"], row["last_status_code"], row["attempts"]) == ("delivered", 200, 1)


def test_test__disabled_endpoint__told_it_waits(operator_console, superuser, endpoint, app):
    endpoint_update(actor=superuser, endpoint=endpoint, changes={"enabled": False})
    response = operator_console.post(_url(app, f"{endpoint.pk}/test/"), follow=True)
    assert "the endpoint is disabled, so it waits until the endpoint is enabled again" in _messages(response)[0]


def test_test__business_forged_post__403_anonymous_to_sign_in(business_console, client, endpoint, app):
    assert business_console.post(_url(app, f"{endpoint.pk}/test/")).status_code == 403
    assert client.post(_url(app, f"{endpoint.pk}/test/")).status_code == 302
    assert not WebhookDelivery.objects.exists()


# --------------------------------------------------------------------------- redeliver


def test_redeliver__operator__a_failed_delivery_is_due_again_now(operator_console, endpoint, app):
    _enqueue(app, "evt_1")
    delivery = WebhookDelivery.objects.get()
    WebhookDelivery.objects.filter(pk=delivery.pk).update(status="failed", attempts=8, next_attempt_at=None)
    response = operator_console.post(_url(app, f"{endpoint.pk}/deliveries/{delivery.pk}/redeliver/"), follow=True)
    assert response.redirect_chain == [(_url(app) + f"#endpoint-{endpoint.pk}", 302)]
    assert _messages(response) == [f"Delivery msg_{delivery.pk} (message.read) is posted again now, with the same "
                                   "webhook-id."]
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("pending", 8) and delivery.next_attempt_at is not None
    assert WebhookDelivery.objects.count() == 1


def test_redeliver__superuser(superuser_console, endpoint, app):
    _enqueue(app, "evt_1")
    delivery = WebhookDelivery.objects.get()
    assert superuser_console.post(_url(app, f"{endpoint.pk}/deliveries/{delivery.pk}/redeliver/")).status_code == 302


def test_redeliver__another_endpoints_or_unknown_delivery__404(operator_console, superuser, endpoint, app):
    _enqueue(app, "evt_1")
    delivery = WebhookDelivery.objects.get()
    other = _endpoint(app, superuser, url="https://93.184.216.34/other")
    assert operator_console.post(_url(app, f"{other.pk}/deliveries/{delivery.pk}/redeliver/")).status_code == 404
    assert operator_console.post(_url(app, f"{endpoint.pk}/deliveries/{delivery.pk + 1}/redeliver/")).status_code \
        == 404


def test_redeliver__business_forged_post__403_anonymous_to_sign_in(business_console, client, endpoint, app):
    _enqueue(app, "evt_1")
    delivery = WebhookDelivery.objects.get()
    WebhookDelivery.objects.filter(pk=delivery.pk).update(status="failed", next_attempt_at=None)
    redeliver = _url(app, f"{endpoint.pk}/deliveries/{delivery.pk}/redeliver/")
    assert business_console.post(redeliver).status_code == 403
    assert client.post(redeliver).status_code == 302
    delivery.refresh_from_db()
    assert delivery.status == "failed"


# --------------------------------------------------------------------------- rotate the secret


def test_rotate__confirmation_then_the_new_secret_once__audited(operator_console, operator_user, endpoint, app):
    response = operator_console.get(_url(app, f"{endpoint.pk}/rotate/"))
    assert response.status_code == 200
    body = _body(response)
    assert "keeps signing beside it for 24 hours" in body and endpoint.secret not in body
    old = endpoint.secret
    response = operator_console.post(_url(app, f"{endpoint.pk}/rotate/"))
    assert response.status_code == 200
    endpoint.refresh_from_db()
    secret = response.context["secret"]
    assert secret == endpoint.secret != old and endpoint.previous_secret == old
    body = _body(response)
    assert secret in body and old not in body and "This is the only time it is shown." in body
    assert response["Cache-Control"] == "no-store"
    entry = AuditEntry.objects.get(field=f"webhook:{endpoint.pk}.secret")
    assert entry.actor == operator_user and secret not in str(entry.new_value) and old not in str(entry.new_value)
    assert secret not in _body(operator_console.get(_url(app)))


def test_rotate__business__403_for_the_page_and_a_forged_post(business_console, endpoint, app):
    assert business_console.get(_url(app, f"{endpoint.pk}/rotate/")).status_code == 403
    old = endpoint.secret
    assert business_console.post(_url(app, f"{endpoint.pk}/rotate/")).status_code == 403
    endpoint.refresh_from_db()
    assert endpoint.secret == old and not AuditEntry.objects.filter(field__endswith=".secret").exists()


def test_rotate__anonymous__sent_to_sign_in(client, endpoint, app):
    assert client.post(_url(app, f"{endpoint.pk}/rotate/")).status_code == 302
    old = endpoint.secret
    endpoint.refresh_from_db()
    assert endpoint.secret == old


# --------------------------------------------------------------------------- delete


def test_delete__confirmation_then_gone_with_its_deliveries__audited(operator_console, operator_user, endpoint, app):
    _enqueue(app, "evt_1", "evt_2")
    response = operator_console.get(_url(app, f"{endpoint.pk}/delete/"))
    assert response.status_code == 200
    assert "Delete this endpoint?" in _body(response) and PUBLIC_URL in _body(response)
    assert WebhookEndpoint.objects.filter(pk=endpoint.pk).exists()  # the page itself changes nothing
    response = operator_console.post(_url(app, f"{endpoint.pk}/delete/"), follow=True)
    assert response.redirect_chain == [(_url(app), 302)]
    assert _messages(response) == [f"Webhook endpoint {PUBLIC_URL} deleted; its pending deliveries were dropped. "
                                   "The change is in the audit trail."]
    assert not WebhookEndpoint.objects.exists() and not WebhookDelivery.objects.exists()
    entry = AuditEntry.objects.get(field=f"webhook:{endpoint.pk}", new_value__isnull=True)
    assert entry.actor == operator_user and entry.old_value["url"] == PUBLIC_URL
    assert response.context["endpoints"] == []


def test_delete__superuser(superuser_console, endpoint, app):
    assert superuser_console.post(_url(app, f"{endpoint.pk}/delete/")).status_code == 302
    assert not WebhookEndpoint.objects.exists()


def test_delete__business__403_for_the_page_and_a_forged_post(business_console, endpoint, app):
    assert business_console.get(_url(app, f"{endpoint.pk}/delete/")).status_code == 403
    assert business_console.post(_url(app, f"{endpoint.pk}/delete/")).status_code == 403
    assert WebhookEndpoint.objects.filter(pk=endpoint.pk).exists()


def test_delete__anonymous__sent_to_sign_in(client, endpoint, app):
    assert client.post(_url(app, f"{endpoint.pk}/delete/")).status_code == 302
    assert WebhookEndpoint.objects.filter(pk=endpoint.pk).exists()


# --------------------------------------------------------------------------- the audit trail


def test_audit_trail__webhook_changes_in_words(operator_console, app):
    operator_console.post(_url(app, "new/"), {"url": PUBLIC_URL, "event_types": ["message.read"]})
    endpoint = WebhookEndpoint.objects.get()
    operator_console.post(_url(app, f"{endpoint.pk}/enabled/"), {"value": "off"})
    operator_console.post(_url(app, f"{endpoint.pk}/rotate/"))
    response = operator_console.get(f"/console/apps/{app.org_name}/{app.app_name}/audit/")
    rows = [(entry["label"], entry["old"], entry["new"]) for entry in response.context["entries"]]
    assert rows == [
        (f"Webhook endpoint {endpoint.pk}: secret", "—", "rotated (never shown here)"),
        (f"Webhook endpoint {endpoint.pk}: state", "enabled", "disabled"),
        (f"Webhook endpoint {endpoint.pk}", "—", f"{PUBLIC_URL} (message.read)"),
    ]
