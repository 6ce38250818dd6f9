"""GET /events' query read without its serializer when the serializer would accept it (apps/receipts/apis.py
event_list_params): the same values, and for anything else the serializer's own answer. The errors themselves
are tested through HTTP in test_api_events_feed.py / test_api_long_poll.py."""

import pytest
from django.http import QueryDict
from rest_framework.exceptions import ValidationError

from apps.common.exceptions import InvalidRequest
from apps.receipts import apis

QUERIES = [
    "", "timeout=30", "timeout=0", "timeout=2.5&cursor=abc", "timeout=1e1", "timeout=30&limit=7&cursor=x&other=1",
    "limit=5", "limit=500", "limit=99999999999999999999999", "cursor=",
    # refused, each way the serializer refuses
    "limit=0", "limit=", "limit=abc", "limit=-3", "timeout=31", "timeout=-1", "timeout=abc", "timeout=", "timeout=+5",
    "timeout=nan", "cursor=a%00b", "timeout=5&limit=0&cursor=%00", "limit=0&timeout=99",
    # repeated: the last one counts, as the serializer reads a QueryDict
    "limit=5&limit=x", "limit=x&limit=5", "timeout=99&timeout=3",
]


def _answer(read, query: str):
    try:
        return "ok", dict(read(QueryDict(query)))
    except (ValidationError, InvalidRequest) as exc:
        return type(exc).__name__, getattr(exc, "detail", None), getattr(exc, "fields", None), str(exc)


@pytest.mark.parametrize("query", QUERIES)
def test_event_list_params__the_serializers_answer(query):
    assert _answer(apis.event_list_params, query) == _answer(apis._event_list_params_validated, query)


def test_event_list_params__a_query_the_serializer_accepts__read_without_it(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the serializer was built")

    monkeypatch.setattr(apis, "EventListQuerySerializer", refuse)
    assert apis.event_list_params(QueryDict("timeout=30&cursor=abc&limit=7")) == {
        "cursor": "abc", "limit": 7, "timeout": 30.0}
