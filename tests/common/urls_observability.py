"""The project's URLs plus two views for the logging tests: one that logs while handling, one that fails (500)."""

import logging

from django.http import JsonResponse
from django.urls import path

from receipts_console.urls import handler404, handler500  # noqa: F401
from receipts_console.urls import urlpatterns as project_urlpatterns


def chatty(request):
    logging.getLogger("apps.test").info("inside the view")
    return JsonResponse({"ok": True})


def boom(request):
    raise RuntimeError("boom")


urlpatterns = [path("test/chatty", chatty), path("test/boom", boom), *project_urlpatterns]
