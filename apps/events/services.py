"""Writes of the event feed: every SDK callback is one row per receiving user."""

from __future__ import annotations

from dataclasses import dataclass, field

from .models import Event


@dataclass
class NewEvent:
    """An event for every device of `user_id` except `origin_device_id` (the device that caused it)."""

    user_id: int
    type: str
    payload: dict = field(default_factory=dict)
    origin_device_id: str = ""
    # Set on the single-chat `message` event of the recipient: handing it out records the delivery.
    delivery_message_pk: int | None = None


def events_publish(*, events: list[NewEvent]) -> list[Event]:
    """Store the events in one INSERT; call inside the transaction of the change that causes them."""
    if not events:
        return []
    return Event.objects.bulk_create(
        [
            Event(
                user_id=e.user_id,
                type=e.type,
                payload=e.payload,
                origin_device_id=e.origin_device_id,
                delivery_message_pk=e.delivery_message_pk,
            )
            for e in events
        ]
    )
