"""SPEC §9 retention end to end: the message and token purges run in a real `celery worker` process on the
real broker (Redis beside PostgreSQL, the embedded broker beside SQLite), against the test database."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.chat.models import AccessToken, Conversation, Message
from apps.chat.services import chat_user_create, message_send, user_token_issue
from apps.common.timeutils import now_ms
from apps.policy.evaluation import MS_PER_DAY
from apps.policy.services import app_create

from .realworker import run_on_real_worker

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def test_retention_tasks__real_worker__expired_messages_and_tokens_gone__the_rest_kept(tmp_path):
    # Given a free app (3 days): 12 messages 4 days old and 2 fresh ones, all unread; 3 expired tokens, 1 live
    app, _ = app_create(org_name="acme", app_name="chat", plan="free")
    alice = chat_user_create(app=app, username="alice", password="pw-alice-1")
    bob = chat_user_create(app=app, username="bob", password="pw-bob-12")
    messages = [
        message_send(app=app, sender=alice, device=None, chat_type="single", to="bob", body={"n": i}).message
        for i in range(14)
    ]
    Message.objects.filter(pk__in=[m.pk for m in messages[:12]]).update(timestamp=now_ms() - 4 * MS_PER_DAY)
    for i in range(4):
        user_token_issue(app=app, username="bob", password="pw-bob-12", device_id=f"d{i}")
    live = AccessToken.objects.order_by("-pk").first()
    AccessToken.objects.exclude(pk=live.pk).update(expires_at=timezone.now() - timedelta(hours=1))

    # When both tasks are sent to a real worker through the broker
    log, results, returncode = run_on_real_worker(
        tmp_path, ["chat.purge_expired_messages", "chat.purge_expired_tokens"], batch_size=5, until=[
            (lambda: Message.objects.count() == 2, 90, "the expired messages to be purged"),
            (lambda: AccessToken.objects.count() == 1, 60, "the expired tokens to be purged"),
        ])

    # Then exactly those went, and bob's unread count is his two fresh messages
    assert set(Message.objects.values_list("pk", flat=True)) == {m.pk for m in messages[12:]}
    assert list(AccessToken.objects.values_list("pk", flat=True)) == [live.pk]
    assert Conversation.objects.get(owner=bob, peer=alice).unread_count == 2
    assert results == {"chat.purge_expired_messages": 12, "chat.purge_expired_tokens": 3}
    assert re.search(r"purged 12 messages of app acme#chat \(retention 3 days, 3 batches\)", log)
    assert returncode == 0, log
