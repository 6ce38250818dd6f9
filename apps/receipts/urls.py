"""Routes of the read-receipt endpoints and the event feed, mounted under the app API base path."""

from django.urls import path

from .apis import (
    ConversationListApi,
    ConversationMarkReadApi,
    ConversationReadAckApi,
    EventListApi,
    EventStreamApi,
    GroupAckListApi,
    GroupBatchReadAckApi,
    GroupMessageReadAckApi,
    MessageReadAckApi,
    MessageReceiptsApi,
)

urlpatterns = [
    path("messages/receipts", MessageReceiptsApi.as_view(), name="message-receipts"),
    path("messages/<str:message_id>/read_ack", MessageReadAckApi.as_view(), name="message-read-ack"),
    path("conversations", ConversationListApi.as_view(), name="conversations"),
    path("conversations/<str:peer>/read_ack", ConversationReadAckApi.as_view(), name="conversation-read-ack"),
    path("conversations/<str:peer>/mark_read", ConversationMarkReadApi.as_view(), name="conversation-mark-read"),
    path(
        "groups/<str:group_id>/messages/<str:message_id>/read_ack",
        GroupMessageReadAckApi.as_view(),
        name="group-message-read-ack",
    ),
    path("groups/<str:group_id>/read_ack", GroupBatchReadAckApi.as_view(), name="group-read-ack-batch"),
    path("groups/<str:group_id>/messages/<str:message_id>/acks", GroupAckListApi.as_view(), name="group-message-acks"),
    path("events", EventListApi.as_view(), name="app-events"),
    path("events/stream", EventStreamApi.as_view(), name="app-events-stream"),
]
