"""GET /events: the per-device event feed with long-poll (SPEC §5 "Events (callbacks)")."""

from __future__ import annotations

import re

from django.db import transaction
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response

from apps.chat.apis import UserTokenApi
from apps.common.pagination import parse_limit
from apps.common.reason_codes import ReasonCode
from apps.common.schema import CURSOR_PATTERN, LIMIT_PARAMETER, error_responses

from .services import events_poll

MAX_TIMEOUT_SECONDS = 30
# A JSON number (RFC 8259): "0", "25", "2.5", "1e1". No "+", spaces, nan or inf.
_TIMEOUT_RE = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")


class EventListQuerySerializer(serializers.Serializer):
    cursor = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    limit = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    timeout = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)

    def validate_limit(self, value: str) -> int:
        return parse_limit(value)  # clamped to 200; not an integer (empty included) or < 1 -> 400 with fields.limit

    def validate_timeout(self, value: str) -> float:
        seconds = float(value) if len(value) <= 40 and _TIMEOUT_RE.fullmatch(value) else -1.0
        if not 0 <= seconds <= MAX_TIMEOUT_SECONDS:
            raise serializers.ValidationError(f"A number of seconds from 0 to {MAX_TIMEOUT_SECONDS}.")
        return seconds


def event_as_dict(event) -> dict:
    """The stored payload plus the feed's own `id` (a string) and `type`."""
    return {**event.payload, "id": str(event.id), "type": event.type}


class EventListApi(UserTokenApi):
    """The device's next events, oldest first, from its own position; long-polls up to `timeout` seconds.

    Never returns events caused by the calling device. Handing out a single-chat message records
    its delivery (and may send the sender a `messages_delivered`).
    """

    @classmethod
    def as_view(cls, **initkwargs):
        # A long-poll waits outside any transaction, even if ATOMIC_REQUESTS is ever turned on.
        return transaction.non_atomic_requests(super().as_view(**initkwargs))

    @extend_schema(
        operation_id="app_events_list",
        parameters=[
            OpenApiParameter("cursor", {"type": "string", "pattern": CURSOR_PATTERN},
                             description="Opaque position: the previous next_cursor, unchanged (any other value is "
                                         "400 invalid_request); absent: from the user's oldest retained event."),
            LIMIT_PARAMETER,
            OpenApiParameter("timeout", {"type": "number", "minimum": 0, "maximum": MAX_TIMEOUT_SECONDS},
                             description="Long-poll: seconds (a number, 0..30, decimals allowed) to wait for "
                                         "an event. Default 0."),
        ],
        responses={
            200: inline_serializer("EventPage", {
                "events": serializers.ListField(
                    child=serializers.DictField(),
                    help_text="Oldest first. Every event has `id` (string) and `type`; the other fields "
                              "depend on the type (see the API guide).",
                ),
                "next_cursor": serializers.CharField(help_text="Never null: poll again with it."),
            }),
            **error_responses((403, ReasonCode.FORBIDDEN)),
        },
    )
    def get(self, request, org_name, app_name):
        query = EventListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        principal = request.user
        result = events_poll(
            app=principal.app,
            user=principal.user,
            device=principal.device,
            cursor=params.get("cursor") or None,
            limit=params.get("limit", parse_limit(None)),
            timeout=params.get("timeout", 0.0),
        )
        return Response({"events": [event_as_dict(e) for e in result.events], "next_cursor": result.next_cursor})
