"""The webhooks admin API (SPEC §10) through HTTP: endpoints, secrets, test, deliveries, redeliver; roles, audit,
and every error code."""

import base64
import json
from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from apps.audit.models import AuditEntry
from apps.webhooks.models import WebhookDelivery, WebhookEndpoint
from apps.webhooks.services import WebhookEvent, webhook_deliveries_enqueue

pytestmark = pytest.mark.django_db

# A public address literal: it "resolves" without DNS, and nothing here ever posts to it.
PUBLIC_URL = "https://93.184.216.34/receipts"
ALL_TYPES = ["message.delivered", "message.read", "conversation.read", "group_message.read"]


def url(*rest, org="acme", app="chat"):
    return "/".join([f"/api/v1/admin/apps/{org}/{app}/webhooks", *map(str, rest)])


def create(client, **body):
    body = {"url": PUBLIC_URL, "event_types": ["message.read"], **body}
    return client.post(url(), body, format="json")


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def endpoint(operator_client, app):
    response = create(operator_client, event_types=ALL_TYPES, description="CRM")
    assert response.status_code == 201, response.json()
    return response.json()


def assert_error(response, status, code, field=None):
    assert response.status_code == status, response.content
    body = response.json()
    assert body["error"] == code, body
    if field is not None:
        assert any(name == field or name.startswith(field + ".") for name in body.get("fields", {})), body


def enqueue(app, *event_ids, event_type="message.read"):
    return webhook_deliveries_enqueue(
        app_id=app.pk,
        app_key=app.app_key,
        event_type=event_type,
        events=[WebhookEvent(event_id=e, timestamp=1_700_000_000_000, data={"message_id": e}) for e in event_ids],
    )


# --------------------------------------------------------------------------- POST /webhooks


@pytest.mark.parametrize("client_fixture", ["operator_client", "superuser_client"])
def test_create__operator_or_superuser__201_endpoint_with_secret_shown_once(request, client_fixture, app):
    client = request.getfixturevalue(client_fixture)
    response = create(client, event_types=["message.read", "group_message.read"], description="our CRM")
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {
        "id",
        "url",
        "event_types",
        "description",
        "enabled",
        "disabled_reason",
        "created_at",
        "secret",
    }
    assert body["url"] == PUBLIC_URL and body["description"] == "our CRM"
    assert body["event_types"] == ["message.read", "group_message.read"]
    assert body["enabled"] is True and body["disabled_reason"] is None
    datetime.fromisoformat(body["created_at"])
    assert body["secret"].startswith("whsec_")
    assert len(base64.b64decode(body["secret"].removeprefix("whsec_"))) >= 24
    # Never shown again
    assert "secret" not in client.get(url(body["id"])).json()
    assert all("secret" not in e for e in client.get(url()).json()["results"])


def test_create__secrets_differ_per_endpoint(operator_client, app):
    first, second = create(operator_client).json(), create(operator_client).json()
    assert first["secret"] != second["secret"]


def test_create__description_optional__empty(operator_client, app):
    assert create(operator_client).json()["description"] == ""


def test_create__duplicate_event_types__listed_once_in_the_contract_order(operator_client, app):
    body = create(operator_client, event_types=["group_message.read", "message.read", "message.read"]).json()
    assert body["event_types"] == ["message.read", "group_message.read"]


def test_create__business_staff__403_forbidden(business_client, app):
    assert_error(create(business_client), 403, "forbidden")
    assert not WebhookEndpoint.objects.exists()


def test_create__no_token__401_unauthenticated(api_client, app):
    assert_error(create(api_client), 401, "unauthenticated")


def test_create__unknown_app__404_not_found(operator_client, app):
    assert_error(
        operator_client.post(url(app="nope"), {"url": PUBLIC_URL, "event_types": ["message.read"]}, format="json"),
        404,
        "not_found",
    )


@pytest.mark.parametrize(
    "event_types", [["message.sent"], ["message.read", "webhook.test"], [], "message.read", [5], None]
)
def test_create__event_types_not_a_subset__400_invalid_request_with_fields(operator_client, app, event_types):
    assert_error(create(operator_client, event_types=event_types), 400, "invalid_request", "event_types")
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.parametrize(
    "bad_url",
    [
        "ftp://93.184.216.34/x",
        "https://",
        "93.184.216.34/x",
        "https://user:pw@93.184.216.34/x",
        "https://93.184.216.34/x#frag",
        "https://93.184.216.34/a b",
        "https://93.184.216.34:0/x",
        5,
        None,
        "https://" + "a" * 64 + ".com/",
    ],
)
def test_create__malformed_url__400_fields_url(operator_client, app, bad_url):
    assert_error(create(operator_client, url=bad_url), 400, "invalid_request", "url")


def test_create__http_url__400_unless_allowed(operator_client, app, settings):
    assert_error(create(operator_client, url="http://93.184.216.34/x"), 400, "invalid_request", "url")
    settings.WEBHOOK_ALLOW_HTTP = True
    assert create(operator_client, url="http://93.184.216.34/x").status_code == 201


@pytest.mark.parametrize(
    "refused",
    [
        "https://127.0.0.1/hook",  # loopback
        "https://localhost:8443/hook",  # a name resolving to loopback
        "https://10.1.2.3/hook",
        "https://172.16.0.1/hook",
        "https://192.168.1.10/hook",  # private
        "https://100.64.0.1/hook",  # shared address space (carrier-grade NAT)
        "https://169.254.169.254/latest/meta-data",  # link-local (cloud metadata)
        "https://224.0.0.1/hook",  # multicast
        "https://240.0.0.1/hook",
        "https://0.0.0.0/hook",  # reserved, unspecified
    ],
)
def test_create__host_resolving_to_a_non_public_address__400_fields_url(operator_client, app, refused):
    response = create(operator_client, url=refused)
    assert_error(response, 400, "invalid_request", "url")
    assert "WEBHOOK_ALLOW_PRIVATE_NETWORKS" in response.json()["fields"]["url"][0]


def test_create__host_that_does_not_resolve__400_fields_url(operator_client, app):
    assert_error(create(operator_client, url="https://receipts.invalid/hook"), 400, "invalid_request", "url")


def test_create__private_address_allowed_by_the_setting__201(operator_client, app, local_network):
    assert create(operator_client, url="http://127.0.0.1:9/hook").status_code == 201


def test_create__eleventh_endpoint__409_limit_reached(operator_client, app, make_app):
    for _ in range(10):
        assert create(operator_client).status_code == 201
    assert_error(create(operator_client), 409, "limit_reached")
    assert WebhookEndpoint.objects.count() == 10
    make_app(app_name="other")  # the limit is per app
    assert (
        operator_client.post(
            url(app="other"), {"url": PUBLIC_URL, "event_types": ["message.read"]}, format="json"
        ).status_code
        == 201
    )


# --------------------------------------------------------------------------- GET /webhooks, GET /webhooks/{id}


@pytest.mark.parametrize("client_fixture", ["business_client", "operator_client", "superuser_client"])
def test_list__any_staff__200_this_apps_endpoints_oldest_first(request, client_fixture, operator_client, app, make_app):
    make_app(app_name="other")
    operator_client.post(url(app="other"), {"url": PUBLIC_URL, "event_types": ["message.read"]}, format="json")
    ids = [create(operator_client, description=f"n{i}").json()["id"] for i in range(3)]
    response = request.getfixturevalue(client_fixture).get(url())
    assert response.status_code == 200
    body = response.json()
    assert [e["id"] for e in body["results"]] == ids and body["next_cursor"] is None
    assert set(body["results"][0]) == {
        "id",
        "url",
        "event_types",
        "description",
        "enabled",
        "disabled_reason",
        "created_at",
    }


def test_list__paged_with_cursor(operator_client, app):
    ids = [create(operator_client).json()["id"] for _ in range(5)]
    first = operator_client.get(url(), {"limit": 2}).json()
    second = operator_client.get(url(), {"limit": 2, "cursor": first["next_cursor"]}).json()
    third = operator_client.get(url(), {"limit": 2, "cursor": second["next_cursor"]}).json()
    assert [e["id"] for page in (first, second, third) for e in page["results"]] == ids
    assert third["next_cursor"] is None


def test_list__errors(operator_client, api_client, app):
    assert_error(operator_client.get(url(app="nope")), 404, "not_found")
    assert_error(api_client.get(url()), 401, "unauthenticated")
    assert_error(operator_client.get(url(), {"cursor": "nonsense!"}), 400, "invalid_request", "cursor")
    assert_error(operator_client.get(url(), {"limit": "0"}), 400, "invalid_request", "limit")


def test_retrieve__200_the_endpoint(business_client, endpoint):
    response = business_client.get(url(endpoint["id"]))
    assert response.status_code == 200
    assert response.json() == {k: v for k, v in endpoint.items() if k != "secret"}


def test_retrieve__another_apps_endpoint_or_unknown_id__404(operator_client, endpoint, make_app, api_client):
    make_app(app_name="other")
    assert_error(operator_client.get(url(endpoint["id"], app="other")), 404, "not_found")
    assert_error(operator_client.get(url(endpoint["id"] + 1000)), 404, "not_found")
    assert_error(operator_client.get(url(2**70)), 404, "not_found")
    assert_error(operator_client.get(url("abc")), 404, "not_found")
    assert_error(api_client.get(url(endpoint["id"])), 401, "unauthenticated")


# --------------------------------------------------------------------------- PATCH, DELETE


def test_update__operator__200_changed_fields_audited_one_row_each(operator_client, endpoint):
    response = operator_client.patch(
        url(endpoint["id"]),
        {
            "url": "https://93.184.216.34/v2",
            "event_types": ["conversation.read"],
            "description": "CRM v2",
        },
        format="json",
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["url"], body["event_types"], body["description"]) == (
        "https://93.184.216.34/v2",
        ["conversation.read"],
        "CRM v2",
    )
    entries = {
        e.field: (e.old_value, e.new_value, e.actor_username)
        for e in AuditEntry.objects.filter(field__startswith=f"webhook:{endpoint['id']}.")
    }
    assert entries == {
        f"webhook:{endpoint['id']}.url": (PUBLIC_URL, "https://93.184.216.34/v2", "olivia"),
        f"webhook:{endpoint['id']}.event_types": (ALL_TYPES, ["conversation.read"], "olivia"),
        f"webhook:{endpoint['id']}.description": ("CRM", "CRM v2", "olivia"),
    }


def test_update__nothing_changes__200_no_audit_row(operator_client, endpoint):
    before = AuditEntry.objects.count()
    assert operator_client.patch(url(endpoint["id"]), {"description": "CRM"}, format="json").status_code == 200
    assert operator_client.patch(url(endpoint["id"]), {}, format="json").status_code == 200
    assert AuditEntry.objects.count() == before


def test_update__disable_then_enable__manual_reason_then_none(operator_client, endpoint):
    off = operator_client.patch(url(endpoint["id"]), {"enabled": False}, format="json").json()
    assert (off["enabled"], off["disabled_reason"]) == (False, "manual")
    on = operator_client.patch(url(endpoint["id"]), {"enabled": True}, format="json").json()
    assert (on["enabled"], on["disabled_reason"]) == (True, None)


@pytest.mark.parametrize(
    "body,field",
    [
        ({"url": "http://93.184.216.34/x"}, "url"),
        ({"url": "https://10.0.0.1/x"}, "url"),
        ({"event_types": ["nope"]}, "event_types"),
        ({"event_types": []}, "event_types"),
        ({"enabled": "yes"}, "enabled"),
        ({"description": 5}, "description"),
        ({"secret": "whsec_AAAA"}, "secret"),  # unknown fields are refused, not ignored
        ({"id": 7}, "id"),
    ],
)
def test_update__invalid__400_fields_and_nothing_changed(operator_client, endpoint, body, field):
    assert_error(operator_client.patch(url(endpoint["id"]), body, format="json"), 400, "invalid_request", field)
    assert operator_client.get(url(endpoint["id"])).json() == {k: v for k, v in endpoint.items() if k != "secret"}


def test_update__not_an_object__400(operator_client, endpoint):
    assert_error(operator_client.patch(url(endpoint["id"]), [1], format="json"), 400, "invalid_request")


def test_update__errors(business_client, operator_client, endpoint):
    assert_error(business_client.patch(url(endpoint["id"]), {"enabled": False}, format="json"), 403, "forbidden")
    assert_error(operator_client.patch(url(endpoint["id"] + 1), {"enabled": False}, format="json"), 404, "not_found")
    assert_error(operator_client.patch(url(endpoint["id"], app="nope"), {}, format="json"), 404, "not_found")


def test_delete__204_gone_with_its_deliveries_audited(operator_client, endpoint, app):
    enqueue(app, "evt_1", "evt_2")
    assert WebhookDelivery.objects.count() == 2
    response = operator_client.delete(url(endpoint["id"]))
    assert response.status_code == 204
    assert_error(operator_client.get(url(endpoint["id"])), 404, "not_found")
    assert not WebhookDelivery.objects.exists()
    entry = AuditEntry.objects.get(field=f"webhook:{endpoint['id']}", new_value__isnull=True)
    assert entry.old_value == {"url": PUBLIC_URL, "event_types": ALL_TYPES, "description": "CRM", "enabled": True}


def test_delete__errors(business_client, operator_client, endpoint):
    assert_error(business_client.delete(url(endpoint["id"])), 403, "forbidden")
    assert_error(operator_client.delete(url(endpoint["id"] + 1)), 404, "not_found")
    assert WebhookEndpoint.objects.filter(pk=endpoint["id"]).exists()


# --------------------------------------------------------------------------- rotate_secret, test


def test_rotate_secret__200_new_secret__previous_signs_24h__audited_without_either(operator_client, endpoint):
    response = operator_client.post(url(endpoint["id"], "rotate_secret"))
    assert response.status_code == 200
    secret = response.json()["secret"]
    assert set(response.json()) == {"secret"}
    assert secret.startswith("whsec_") and secret != endpoint["secret"]
    row = WebhookEndpoint.objects.get(pk=endpoint["id"])
    assert (row.secret, row.previous_secret) == (secret, endpoint["secret"])
    overlap = row.previous_secret_expires_at - timezone.now()
    assert timedelta(hours=23, minutes=59) < overlap <= timedelta(hours=24)
    entry = AuditEntry.objects.get(field=f"webhook:{endpoint['id']}.secret")
    assert entry.actor_username == "olivia"
    trail = json.dumps(list(AuditEntry.objects.values("old_value", "new_value", "reason")))
    assert secret not in trail and endpoint["secret"] not in trail
    assert secret.removeprefix("whsec_") not in trail and endpoint["secret"].removeprefix("whsec_") not in trail


def test_rotate_secret__errors(business_client, operator_client, endpoint):
    assert_error(business_client.post(url(endpoint["id"], "rotate_secret")), 403, "forbidden")
    assert_error(operator_client.post(url(endpoint["id"] + 1, "rotate_secret")), 404, "not_found")


def test_test__202_delivery_id_of_a_pending_webhook_test_delivery(operator_client, endpoint):
    response = operator_client.post(url(endpoint["id"], "test"))
    assert response.status_code == 202
    delivery = WebhookDelivery.objects.get(pk=response.json()["delivery_id"])
    assert (delivery.endpoint_id, delivery.event_type, delivery.status, delivery.attempts) == (
        endpoint["id"],
        "webhook.test",
        "pending",
        0,
    )
    body = json.loads(delivery.body)
    assert body["type"] == "webhook.test" and body["app_key"] == "acme#chat"
    assert body["data"]["endpoint_id"] == endpoint["id"]


def test_test__errors(business_client, operator_client, endpoint):
    assert_error(business_client.post(url(endpoint["id"], "test")), 403, "forbidden")
    assert_error(operator_client.post(url(endpoint["id"] + 1, "test")), 404, "not_found")
    assert not WebhookDelivery.objects.exists()


# --------------------------------------------------------------------------- deliveries, redeliver


DELIVERY_FIELDS = {
    "id",
    "event_id",
    "event_type",
    "status",
    "attempts",
    "last_status_code",
    "last_error",
    "next_attempt_at",
    "created_at",
    "delivered_at",
}


def test_deliveries__any_staff__newest_first_with_their_state(business_client, endpoint, app):
    enqueue(app, "evt_1", "evt_2")
    enqueue(app, "evt_3", event_type="conversation.read")
    response = business_client.get(url(endpoint["id"], "deliveries"))
    assert response.status_code == 200
    body = response.json()
    assert [d["event_id"] for d in body["results"]] == ["evt_3", "evt_2", "evt_1"]
    assert body["next_cursor"] is None
    first = body["results"][0]
    assert set(first) == DELIVERY_FIELDS
    assert (
        first["event_type"],
        first["status"],
        first["attempts"],
        first["last_status_code"],
        first["last_error"],
        first["delivered_at"],
    ) == ("conversation.read", "pending", 0, None, "", None)
    datetime.fromisoformat(first["next_attempt_at"]) and datetime.fromisoformat(first["created_at"])


def test_deliveries__status_filter_and_paging(operator_client, endpoint, app):
    enqueue(app, *[f"evt_{n}" for n in range(5)])
    WebhookDelivery.objects.filter(event_id__in=["evt_1", "evt_3"]).update(status="delivered")
    WebhookDelivery.objects.filter(event_id="evt_4").update(status="failed")
    listed = {
        status: [
            d["event_id"]
            for d in operator_client.get(url(endpoint["id"], "deliveries"), {"status": status}).json()["results"]
        ]
        for status in ("pending", "delivered", "failed")
    }
    assert listed == {"pending": ["evt_2", "evt_0"], "delivered": ["evt_3", "evt_1"], "failed": ["evt_4"]}
    seen, cursor = [], None
    while True:
        page = operator_client.get(
            url(endpoint["id"], "deliveries"), {"limit": 2, **({"cursor": cursor} if cursor else {})}
        ).json()
        seen += [d["event_id"] for d in page["results"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["evt_4", "evt_3", "evt_2", "evt_1", "evt_0"]


def test_deliveries__errors(operator_client, endpoint):
    deliveries = url(endpoint["id"], "deliveries")
    assert_error(operator_client.get(deliveries, {"status": "lost"}), 400, "invalid_request", "status")
    assert_error(operator_client.get(deliveries, {"cursor": "x!"}), 400, "invalid_request", "cursor")
    assert_error(operator_client.get(deliveries, {"limit": "-1"}), 400, "invalid_request", "limit")
    assert_error(operator_client.get(url(endpoint["id"] + 1, "deliveries")), 404, "not_found")


def test_redeliver__202_a_new_attempt_now_same_row(operator_client, endpoint, app):
    enqueue(app, "evt_1")
    delivery = WebhookDelivery.objects.get()
    WebhookDelivery.objects.filter(pk=delivery.pk).update(status="failed", attempts=8, next_attempt_at=None)
    response = operator_client.post(url(endpoint["id"], "deliveries", delivery.pk, "redeliver"))
    assert response.status_code == 202
    assert response.json() == {"delivery_id": delivery.pk}
    delivery.refresh_from_db()
    assert delivery.status == "pending" and delivery.attempts == 8
    assert abs(delivery.next_attempt_at - timezone.now()) < timedelta(seconds=5)
    assert WebhookDelivery.objects.count() == 1  # the same delivery (its webhook-id is the row's)


def test_redeliver__errors(business_client, operator_client, endpoint, app):
    enqueue(app, "evt_1")
    delivery = WebhookDelivery.objects.get()
    other = create(operator_client).json()
    assert_error(business_client.post(url(endpoint["id"], "deliveries", delivery.pk, "redeliver")), 403, "forbidden")
    assert_error(operator_client.post(url(other["id"], "deliveries", delivery.pk, "redeliver")), 404, "not_found")
    assert_error(
        operator_client.post(url(endpoint["id"], "deliveries", delivery.pk + 1, "redeliver")), 404, "not_found"
    )


# --------------------------------------------------------------------------- audit


def test_audit__create_change_rotate_delete__in_the_apps_trail_never_a_secret(operator_client, app):
    created = create(operator_client, description="crm").json()
    operator_client.patch(url(created["id"]), {"enabled": False}, format="json")
    rotated = operator_client.post(url(created["id"], "rotate_secret")).json()["secret"]
    operator_client.delete(url(created["id"]))
    trail = operator_client.get("/api/v1/admin/apps/acme/chat/audit").json()["results"]
    prefix = f"webhook:{created['id']}"
    assert [e["field"] for e in trail] == [prefix, f"{prefix}.secret", f"{prefix}.enabled", prefix]
    assert trail[-1]["old"] is None and trail[-1]["new"]["url"] == PUBLIC_URL
    assert (trail[2]["old"], trail[2]["new"]) == (True, False)
    text = json.dumps(trail)
    for secret in (created["secret"], rotated):
        assert secret.removeprefix("whsec_") not in text


def test_schema__every_webhook_error_code_is_documented():
    from drf_spectacular.generators import SchemaGenerator

    paths = SchemaGenerator().get_schema(request=None, public=True)["paths"]
    base = "/api/v1/admin/apps/{org_name}/{app_name}/webhooks"
    create_responses = paths[base]["post"]["responses"]
    assert "limit_reached" in create_responses["409"]["description"]
    assert "forbidden" in create_responses["403"]["description"]
    for path, method in [
        (base, "get"),
        (base + "/{webhook_id}", "get"),
        (base + "/{webhook_id}", "patch"),
        (base + "/{webhook_id}", "delete"),
        (base + "/{webhook_id}/rotate_secret", "post"),
        (base + "/{webhook_id}/test", "post"),
        (base + "/{webhook_id}/deliveries", "get"),
        (base + "/{webhook_id}/deliveries/{delivery_id}/redeliver", "post"),
    ]:
        responses = paths[path][method]["responses"]
        assert "not_found" in responses["404"]["description"], (path, method)
        assert {"400", "401", "403"} <= set(responses), (path, method)
    assert "202" in paths[base + "/{webhook_id}/test"]["post"]["responses"]
    assert "204" in paths[base + "/{webhook_id}"]["delete"]["responses"]
    status = next(p for p in paths[base + "/{webhook_id}/deliveries"]["get"]["parameters"] if p["name"] == "status")
    assert status["schema"]["enum"] == ["delivered", "failed", "pending"] or set(status["schema"]["enum"]) == {
        "pending",
        "delivered",
        "failed",
    }


def test_endpoint_deleted_while_a_change_was_on_its_way__404_not_a_500(operator_client, endpoint, app):
    # The API found the endpoint, then a concurrent DELETE committed before the change took its lock
    from apps.common.exceptions import NotFound
    from apps.webhooks import services

    enqueue(app, "evt_1")
    stale = WebhookEndpoint.objects.select_related("app").get(pk=endpoint["id"])
    delivery = WebhookDelivery.objects.get()
    WebhookEndpoint.objects.filter(pk=stale.pk).delete()
    for change in (
        lambda: services.endpoint_update(actor=None, endpoint=stale, changes={"description": "x"}),
        lambda: services.endpoint_secret_rotate(actor=None, endpoint=stale),
        lambda: services.endpoint_test_send(endpoint=stale),
        lambda: services.endpoint_delete(actor=None, endpoint=stale),
        lambda: services.delivery_redeliver(delivery=delivery),
    ):
        with pytest.raises(NotFound):
            change()
    assert not AuditEntry.objects.filter(field__startswith=f"webhook:{stale.pk}.").exists()
    assert not WebhookDelivery.objects.exists()


# --------------------------------------------------------------------------- fixed query counts


@pytest.mark.parametrize("endpoints", [1, 6])
def test_list__query_count_does_not_grow_with_the_endpoints(operator_client, app, endpoints, django_assert_num_queries):
    for _ in range(endpoints):
        assert create(operator_client).status_code == 201
    operator_client.get(url())  # the staff token's lookups are the same on every request
    with django_assert_num_queries(4):  # staff token, its user's roles, the app, one page of endpoints
        assert len(operator_client.get(url()).json()["results"]) == endpoints


@pytest.mark.parametrize("deliveries", [1, 6])
def test_deliveries__query_count_does_not_grow_with_the_deliveries(
    operator_client, endpoint, app, deliveries, django_assert_num_queries
):
    enqueue(app, *[f"evt_{i}" for i in range(deliveries)])
    path = url(endpoint["id"], "deliveries")
    operator_client.get(path)
    with django_assert_num_queries(5):  # staff token, its user's roles, the app, the endpoint, one page of deliveries
        assert len(operator_client.get(path).json()["results"]) == deliveries
