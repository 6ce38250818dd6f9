"""Webhook fixtures: the sweeper thread (the receiver and local_network are tests/conftest.py's)."""

import pytest

from apps.webhooks import services


@pytest.fixture
def sweeper():
    """The Celery task's sweeper thread (services.webhook_deliveries_sweep), its connection closed afterwards."""
    yield services.webhook_deliveries_sweep
    services.webhook_sweeper_shutdown()
