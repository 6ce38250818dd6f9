"""Routes of the event feed, mounted under the app API base path."""

from django.urls import path

from .apis import EventListApi

urlpatterns = [
    path("events", EventListApi.as_view(), name="app-events"),
]
