"""The webhook outbox's history is purged (SPEC §10, "keep the data small"): deliveries older than
WEBHOOK_DELIVERY_RETENTION_DAYS go in bounded batches, whatever their status; younger ones stay. Through the
command and the Celery task body, as beat runs it."""

import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from apps.webhooks.models import WebhookDelivery, WebhookEndpoint, event_mask
from apps.webhooks.tasks import purge_expired_deliveries

pytestmark = pytest.mark.django_db


@pytest.fixture
def endpoint(make_app):
    return WebhookEndpoint.objects.create(app=make_app(), url="https://93.184.216.34/h", secret="whsec_dGVzdA==",
                                          event_mask=event_mask(["message.read"]))


def delivery(endpoint, n: int, *, age_days: float, status: str) -> WebhookDelivery:
    created = timezone.now() - timedelta(days=age_days)
    return WebhookDelivery.objects.create(endpoint=endpoint, event_id=f"evt_{n}", event_type="message.read",
                                          body="{}", status=status, created_at=created, next_attempt_at=created)


def test_purge__old_rows_of_every_status_go__young_ones_stay(endpoint, settings):
    settings.WEBHOOK_DELIVERY_RETENTION_DAYS = 7
    old = [delivery(endpoint, i, age_days=8, status=s) for i, s in enumerate(["delivered", "failed", "pending"] * 3)]
    young = [delivery(endpoint, 100 + i, age_days=6.9, status=s) for i, s in enumerate(["delivered", "pending"])]
    out = io.StringIO()
    call_command("purge_webhook_deliveries", "--dry-run", stdout=out)
    assert "would purge: 9" in out.getvalue() and WebhookDelivery.objects.count() == 11
    settings.PURGE_BATCH_SIZE = 4  # three batches
    assert purge_expired_deliveries() == len(old)
    assert sorted(WebhookDelivery.objects.values_list("pk", flat=True)) == sorted(d.pk for d in young)
    assert purge_expired_deliveries() == 0  # idempotent
