"""The outbox's enqueue (SPEC §10 "Durability", "Cost"): one statement inside the receipt's transaction, whether or
not endpoints exist; rows only for the app's enabled endpoints subscribed to the type; nothing if rolled back."""

import json

import pytest
from django.db import connection, transaction
from django.utils import timezone

from apps.webhooks.models import WebhookDelivery, WebhookEndpoint, event_mask
from apps.webhooks.services import (
    WebhookEvent,
    webhook_deliveries_enqueue,
    webhook_deliveries_insert_params,
    webhook_deliveries_insert_sql,
    webhook_id_of,
)

pytestmark = pytest.mark.django_db


def endpoint(app, *event_types, enabled=True, url="https://93.184.216.34/hook"):
    return WebhookEndpoint.objects.create(
        app=app, url=url, event_mask=event_mask(event_types), enabled=enabled, secret="whsec_dGVzdA=="
    )


def read_event(event_id="evt_1", message_id="m1"):
    return WebhookEvent(
        event_id=event_id,
        timestamp=1_700_000_000_123,
        data={"message_id": message_id, "from": "bob", "to": "alice", "timestamp": 1_700_000_000_123},
    )


def enqueue(app, events, event_type="message.read"):
    return webhook_deliveries_enqueue(app_id=app.pk, app_key=app.app_key, event_type=event_type, events=events)


def test_enqueue__no_endpoints__one_query_no_row(make_app, django_assert_num_queries):
    app = make_app()
    with django_assert_num_queries(1):
        assert enqueue(app, [read_event()]) == 0
    assert not WebhookDelivery.objects.exists()


def test_enqueue__only_enabled_endpoints_of_the_app_subscribed_to_the_type__one_query(
    make_app, django_assert_num_queries
):
    app, other = make_app(), make_app(app_name="other")
    wanted = [endpoint(app, "message.read"), endpoint(app, "message.read", "conversation.read")]
    endpoint(app, "conversation.read", "group_message.read", "message.delivered")  # not subscribed
    endpoint(app, "message.read", enabled=False)  # disabled
    endpoint(other, "message.read")  # another app's
    with django_assert_num_queries(1):
        assert enqueue(app, [read_event()]) == 2
    rows = WebhookDelivery.objects.order_by("endpoint_id")
    assert [r.endpoint_id for r in rows] == [e.pk for e in wanted]
    row = rows[0]
    assert (row.event_id, row.event_type, row.status, row.attempts, row.last_error) == (
        "evt_1",
        "message.read",
        "pending",
        0,
        "",
    )
    assert row.next_attempt_at is not None and row.next_attempt_at == row.created_at
    assert json.loads(row.body) == {
        "type": "message.read",
        "timestamp": 1_700_000_000_123,
        "app_key": "acme#chat",
        "data": {"message_id": "m1", "from": "bob", "to": "alice", "timestamp": 1_700_000_000_123},
    }
    assert rows[0].body == rows[1].body
    assert len({webhook_id_of(r.pk) for r in rows}) == 2  # one webhook-id per (event, endpoint)


def test_enqueue__several_events__one_query_a_row_each_per_endpoint(make_app, django_assert_num_queries):
    app = make_app()
    endpoint(app, "message.delivered")
    endpoint(app, "message.delivered")
    events = [read_event(f"evt_{n}", f"m{n}") for n in range(5)]
    with django_assert_num_queries(1):
        assert enqueue(app, events, event_type="message.delivered") == 10
    assert WebhookDelivery.objects.values("event_id").distinct().count() == 5


def test_enqueue__no_events__no_query(make_app, django_assert_num_queries):
    app = make_app()
    endpoint(app, "message.read")
    with django_assert_num_queries(0):
        assert enqueue(app, []) == 0


def test_enqueue__same_event_twice__one_delivery_per_endpoint(make_app):
    app = make_app()
    endpoint(app, "message.read")
    assert enqueue(app, [read_event()]) == 1
    assert enqueue(app, [read_event()]) == 0
    assert WebhookDelivery.objects.count() == 1


def test_enqueue__receipt_rolled_back__nothing_to_post(make_app):
    app = make_app()
    endpoint(app, "message.read")

    class ReceiptFailed(Exception):
        pass

    with pytest.raises(ReceiptFailed), transaction.atomic():
        enqueue(app, [read_event()])
        assert WebhookDelivery.objects.count() == 1  # written in the transaction...
        raise ReceiptFailed
    assert not WebhookDelivery.objects.exists()  # ...and gone with it


def test_enqueue__data_as_given_unicode_included(make_app):
    app = make_app()
    endpoint(app, "group_message.read")
    data = {"message_id": "m-ü", "group_id": "g1", "from": "bob", "count": 3, "timestamp": 1}
    enqueue(app, [WebhookEvent(event_id="evt_9", timestamp=1, data=data)], event_type="group_message.read")
    assert json.loads(WebhookDelivery.objects.get().body)["data"] == data


@pytest.mark.skipif(connection.vendor != "postgresql", reason="a CTE with an INSERT is PostgreSQL's")
def test_enqueue_fragment__composed_into_one_postgresql_statement__same_rows(make_app):
    # The form a fused receipt statement uses: the events come from an earlier CTE, the bodies are built in SQL.
    app = make_app()
    subscribed = endpoint(app, "conversation.read")
    endpoint(app, "message.read")
    hooked = webhook_deliveries_insert_sql(
        event_id="'evt_' || source.n::text",
        body="json_build_object('type', %(webhook_event_type)s::text, 'timestamp', source.n, "
        "'app_key', %(app_key)s::text, 'data', json_build_object('from', 'bob'))::text",
        source=", source",
    )
    sql = (
        f"WITH source AS (SELECT n FROM generate_series(1, 3) AS n), hooked AS ({hooked} RETURNING 1) "
        "SELECT count(*) FROM hooked"
    )
    params = webhook_deliveries_insert_params(app_id=app.pk, event_type="conversation.read", moment=timezone.now())
    params["app_key"] = app.app_key
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        assert cursor.fetchone() == (3,)
    rows = list(WebhookDelivery.objects.order_by("event_id"))
    assert [(r.endpoint_id, r.event_id) for r in rows] == [(subscribed.pk, f"evt_{n}") for n in (1, 2, 3)]
    assert json.loads(rows[0].body) == {
        "type": "conversation.read",
        "timestamp": 1,
        "app_key": "acme#chat",
        "data": {"from": "bob"},
    }


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite runs one writer at a time: no such race")
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_enqueue__endpoint_deleted_meanwhile__the_receipt_commits_without_waiting(make_app):
    # An operator's DELETE is in flight (its row lock held) while a receipt enqueues for that endpoint: the receipt
    # neither waits for the DELETE nor fails when it commits (no foreign-key check ties the two together).
    import threading

    from apps.webhooks.services import endpoint_delete

    app = make_app()
    doomed = endpoint(app, "message.read")
    deleting, release, failures = threading.Event(), threading.Event(), []

    def delete_slowly():
        try:
            with transaction.atomic():
                endpoint_delete(actor=None, endpoint=WebhookEndpoint.objects.select_related("app").get(pk=doomed.pk))
                deleting.set()
                release.wait(10)
        except Exception as exc:  # reported below
            failures.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=delete_slowly)
    thread.start()
    try:
        assert deleting.wait(10)
        with transaction.atomic():
            enqueue(app, [read_event()])
        committed_while_the_delete_was_open = not release.is_set()
    finally:
        release.set()
        thread.join(10)
    assert failures == [] and committed_while_the_delete_was_open
    assert not WebhookEndpoint.objects.filter(pk=doomed.pk).exists()
