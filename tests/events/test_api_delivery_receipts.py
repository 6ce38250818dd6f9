"""Automatic delivery receipts (SPEC §1 and §5): handing a single-chat message to any device of its
recipient records the delivery and, when asked for and allowed, tells the sender once."""

from __future__ import annotations

import pytest
from django.utils import timezone

from apps.chat.models import Message
from apps.common.timeutils import to_ms
from apps.receipts.counters import receipt_count_total

pytestmark = pytest.mark.django_db


def _delivered_events(device, **params):
    return [e for e in device.poll(**params)["events"] if e["type"] == "messages_delivered"]


def _delivery_count(app) -> int:
    return receipt_count_total(app_id=app.pk, kind="delivery")


def test_delivery__recipient_device_fetches__sender_devices_get_one_messages_delivered(chat):
    a1 = chat.login("alice", "a1", require_delivery_ack=True)
    a2 = chat.login("alice", "a2")
    bob = chat.login("bob", "b1")
    sent = chat.send(a1, "bob", {"text": "hi"})
    before = to_ms(timezone.now())

    assert [e["message_id"] for e in bob.poll()["events"]] == [sent["message_id"]]

    message = Message.objects.get(message_id=sent["message_id"])
    assert message.delivered_at is not None
    # Both of alice's devices, the sending one included: no device caused the receipt.
    for device in (a1, a2):
        receipts = _delivered_events(device)
        assert len(receipts) == 1
        receipt = receipts[0]
        assert set(receipt) == {"id", "type", "message_id", "from", "to", "timestamp"}
        assert (receipt["type"], receipt["message_id"], receipt["from"], receipt["to"]) == (
            "messages_delivered", sent["message_id"], "bob", "alice"
        )
        assert isinstance(receipt["id"], str) and receipt["timestamp"] >= before
    assert _delivery_count(chat.app) == 1


def test_delivery__second_device_and_second_fetch__no_second_receipt(chat):
    a1 = chat.login("alice", "a1", require_delivery_ack=True)
    phone, laptop = chat.login("bob", "phone"), chat.login("bob", "laptop")
    chat.send(a1, "bob")

    phone.poll()
    phone.poll()  # the same device again, from the start
    laptop.poll()  # another device of the recipient

    assert len(_delivered_events(chat.login("alice", "a2"))) == 1
    assert _delivery_count(chat.app) == 1


def test_delivery__several_messages_in_one_page__one_receipt_each(chat):
    a1 = chat.login("alice", "a1", require_delivery_ack=True)
    bob = chat.login("bob", "b1")
    sent = [chat.send(a1, "bob", {"n": i}) for i in range(3)]

    bob.poll()

    receipts = _delivered_events(chat.login("alice", "a2"))
    assert [r["message_id"] for r in receipts] == [s["message_id"] for s in sent]
    assert _delivery_count(chat.app) == 3


def test_delivery__only_handed_messages_are_delivered(chat):
    a1 = chat.login("alice", "a1", require_delivery_ack=True)
    bob = chat.login("bob", "b1")
    sent = [chat.send(a1, "bob", {"n": i}) for i in range(3)]

    bob.poll(limit=2)

    delivered = set(Message.objects.filter(delivered_at__isnull=False).values_list("message_id", flat=True))
    assert delivered == {sent[0]["message_id"], sent[1]["message_id"]}


def test_delivery__sender_without_require_delivery_ack__delivery_recorded_no_event(chat):
    a1 = chat.login("alice", "a1")  # require_delivery_ack defaults to false
    bob = chat.login("bob", "b1")
    sent = chat.send(a1, "bob")

    bob.poll()

    assert Message.objects.get(message_id=sent["message_id"]).delivered_at is not None
    assert _delivered_events(chat.login("alice", "a2")) == []
    assert _delivery_count(chat.app) == 0


def test_delivery__flag_is_the_one_captured_at_send_time(chat):
    a1 = chat.login("alice", "a1", require_delivery_ack=True)
    bob = chat.login("bob", "b1")
    sent = chat.send(a1, "bob")
    chat.login("alice", "a1", require_delivery_ack=False)  # same device logs in again with the switch off

    bob.poll()

    assert [r["message_id"] for r in _delivered_events(chat.login("alice", "a2"))] == [sent["message_id"]]


def test_delivery__app_policy_delivery_ack_disabled__no_event(chat, operator_client):
    a1 = chat.login("alice", "a1", require_delivery_ack=True)
    bob = chat.login("bob", "b1")
    sent = chat.send(a1, "bob")
    response = operator_client.patch(
        f"/api/v1/admin/apps/{chat.app.org_name}/{chat.app.app_name}/policy",
        {"delivery_ack_enabled": False}, format="json",
    )
    assert response.status_code == 200, response.content

    bob.poll()

    assert Message.objects.get(message_id=sent["message_id"]).delivered_at is not None
    assert _delivered_events(chat.login("alice", "a2")) == []
    assert _delivery_count(chat.app) == 0


def test_delivery__senders_other_device_reading_its_copy__is_not_a_delivery(chat):
    a1 = chat.login("alice", "a1", require_delivery_ack=True)
    a2 = chat.login("alice", "a2")
    chat.login("bob", "b1")
    sent = chat.send(a1, "bob")

    assert [e["message_id"] for e in a2.poll()["events"]] == [sent["message_id"]]

    assert Message.objects.get(message_id=sent["message_id"]).delivered_at is None
    assert _delivered_events(a1) == []


def test_delivery__group_message__never_delivered_nor_receipted(chat):
    group_id = chat.group("alice", ["bob"])
    a1 = chat.login("alice", "a1", require_delivery_ack=True)
    bob = chat.login("bob", "b1")
    sent = chat.send(a1, group_id, {"text": "g"}, chat_type="group")

    assert [e["message_id"] for e in bob.poll()["events"]] == [sent["message_id"]]

    assert Message.objects.get(message_id=sent["message_id"]).delivered_at is None
    assert _delivered_events(chat.login("alice", "a2")) == []
    assert _delivery_count(chat.app) == 0


def test_delivery__receipt_reaches_the_sender_through_its_cursor(chat):
    a1 = chat.login("alice", "a1", require_delivery_ack=True)
    bob = chat.login("bob", "b1")
    start = a1.poll()["next_cursor"]
    sent = chat.send(a1, "bob")

    bob.poll()

    page = a1.poll(cursor=start)
    assert [(e["type"], e["message_id"]) for e in page["events"]] == [("messages_delivered", sent["message_id"])]
    assert a1.poll(cursor=page["next_cursor"])["events"] == []
