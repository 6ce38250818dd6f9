"""The ack endpoints return their service results as plain dicts (apps/receipts/apis.py); the documented
response serializers must describe exactly those dicts."""

from dataclasses import asdict, fields, replace

import pytest

from apps.receipts import apis
from apps.receipts.services import ConversationReadResult, GroupAckResult, MessageReadResult

CASES = [
    (MessageReadResult(message_id="m1", already_read=False), apis.MessageReadAckSerializer),
    (ConversationReadResult(peer="alice", sent=True, unread_before=3), apis.ConversationReadAckSerializer),
    (GroupAckResult(message_id="m1", group_id="g1", count=2, already_acked=True), apis.GroupMessageReadAckSerializer),
]


@pytest.mark.parametrize(("result", "serializer"), CASES)
def test_ack_response__plain_dict_matches_documented_serializer(result, serializer):
    assert {f.name for f in fields(result)} == set(serializer().fields)
    public = {k: v for k, v in asdict(result).items() if k != "private"}
    assert apis._as_dict(result) == public  # `private` is left out unless true
    assert apis._as_dict(replace(result, private=True)) == {**public, "private": True}
    assert asdict(replace(result, private=True)) == serializer(replace(result, private=True)).data
