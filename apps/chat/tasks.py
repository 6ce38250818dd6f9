"""Celery tasks of the chat runtime: thin wrappers that call the retention purges (SPEC §9). No rules here."""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings

from apps.common.batching import purge_until_time_limit

from .purge import messages_purge_expired, tokens_purge_expired

logger = logging.getLogger(__name__)


@shared_task(
    name="chat.purge_expired_messages",
    soft_time_limit=settings.PURGE_SOFT_TIME_LIMIT_SECONDS,
    time_limit=settings.PURGE_TIME_LIMIT_SECONDS,
    ignore_result=True,
)
def purge_expired_messages() -> int:
    """Delete every app's messages past its plan's retention; idempotent, safe to overlap with another run.

    At the soft time limit the batch in flight rolls back and the run stops; the next run goes on from there.
    """
    return purge_until_time_limit(messages_purge_expired, label="message purge", logger=logger)


@shared_task(
    name="chat.purge_expired_tokens",
    soft_time_limit=settings.PURGE_SOFT_TIME_LIMIT_SECONDS,
    time_limit=settings.PURGE_TIME_LIMIT_SECONDS,
    ignore_result=True,
)
def purge_expired_tokens() -> int:
    """Delete expired access and staff tokens; idempotent, safe to overlap with another run."""
    return purge_until_time_limit(tokens_purge_expired, label="token purge", logger=logger)
