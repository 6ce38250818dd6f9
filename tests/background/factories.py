"""Test data for the purges: apps, users, a group and its messages made through the services, as
production makes them; the acks themselves in bulk (their volume, not their path, is under test)."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.db.models import F

from apps.chat.models import ChatUser, Group, Message
from apps.chat.services import chat_user_create, group_create, message_send
from apps.common.timeutils import now_ms
from apps.events.models import Event
from apps.policy.evaluation import MS_PER_DAY
from apps.policy.services import app_create, policy_update
from apps.receipts.models import GroupAck

HOUR_MS = 3_600_000


def staff_actor():
    """A superuser: policy_update accepts operator and business fields from it."""
    user, _ = get_user_model().objects.get_or_create(username="purge-admin", defaults={"is_superuser": True})
    return user


@dataclass
class AckWorld:
    """One app with a group of `sender` + readers, group read acks switched on."""

    app: object
    sender: ChatUser
    readers: list[ChatUser]
    group: Group
    messages: list[Message] = field(default_factory=list)


def ack_world(*, org_name: str = "acme", app_name: str = "chat", readers: int = 10) -> AckWorld:
    app, _ = app_create(org_name=org_name, app_name=app_name, plan="pro")
    policy_update(actor=staff_actor(), app=app, changes={"group_read_ack_enabled": True}, reason="tests")
    sender = chat_user_create(app=app, username="sender", password="pw")
    users = [chat_user_create(app=app, username=f"reader{i}", password="pw") for i in range(readers)]
    group = group_create(app=app, name="team", owner="sender", members=[u.username for u in users])
    return AckWorld(app=app, sender=sender, readers=users, group=group)


def group_message(world: AckWorld, *, age_ms: int) -> Message:
    """A group message asking for acks, sent `age_ms` ago (sent now, then dated back)."""
    message = message_send(
        app=world.app, sender=world.sender, device=None, chat_type="group",
        to=world.group.group_id, body={"text": "hello"}, need_group_ack=True,
    ).message
    assert message.need_group_ack
    message.timestamp = now_ms() - age_ms
    Message.objects.filter(pk=message.pk).update(timestamp=message.timestamp)
    world.messages.append(message)
    return message


def acks(world: AckWorld, message: Message, *, count: int | None = None) -> list[GroupAck]:
    """`count` readers (default all) ack `message`, inserted in one statement."""
    readers = world.readers if count is None else world.readers[:count]
    created = GroupAck.objects.bulk_create(
        [
            GroupAck(app=world.app, message=message, reader=reader, message_timestamp=message.timestamp)
            for reader in readers
        ]
    )
    # The count agrees with the stored acks, as the ack service keeps it (SPEC §9).
    Message.objects.filter(pk=message.pk).update(group_ack_count=F("group_ack_count") + len(created))
    return created


def days_ms(days: float) -> int:
    return int(days * MS_PER_DAY)


def ack_ids(world: AckWorld, message: Message) -> set[int]:
    return set(GroupAck.objects.filter(app=world.app, message=message).values_list("pk", flat=True))


def events_for(user: ChatUser, *, count: int, created_at) -> list[Event]:
    return Event.objects.bulk_create(
        [Event(user=user, type="test", payload={"n": i}, created_at=created_at) for i in range(count)]
    )


def run_at_once(work, *, copies: int = 2) -> tuple[list, list]:
    """Run `copies` threads of `work()` released together; returns (results, errors).

    Each thread closes its own database connections, as a worker process would.
    """
    import threading

    from django.db import connections

    results, errors = [], []
    start = threading.Barrier(copies)

    def run():
        try:
            start.wait(timeout=10)
            results.append(work())
        except Exception as exc:  # reported to the test, with the other thread's outcome
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(copies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results, errors
