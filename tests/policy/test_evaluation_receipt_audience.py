"""Who is told of a receipt (SPEC §1, §5 "Events"): the pure rules the receipt writes call, no database."""

import pytest

from apps.policy.evaluation import MessageReadAudience, delivery_receipt_due, message_read_audience


@pytest.mark.parametrize(
    ("require_delivery_ack", "delivery_ack_enabled", "due"),
    [(True, True, True), (True, False, False), (False, True, False), (False, False, False)],
)
def test_delivery_receipt_due__only_when_the_message_asked_and_the_switch_is_on(
    require_delivery_ack, delivery_ack_enabled, due
):
    assert (
        delivery_receipt_due(require_delivery_ack=require_delivery_ack, delivery_ack_enabled=delivery_ack_enabled)
        is due
    )


def test_message_read_audience__message_asked_for_read_receipts__sender_and_reader_devices():
    assert message_read_audience(require_read_ack=True) == MessageReadAudience(sender=True, reader_other_devices=True)


def test_message_read_audience__message_did_not_ask__reader_devices_only():
    assert message_read_audience(require_read_ack=False) == MessageReadAudience(sender=False, reader_other_devices=True)
