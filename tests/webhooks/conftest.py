"""Webhook fixtures: a real HTTP receiver on 127.0.0.1 (tests/webhooks/receiver.py) and the switches that let a
test post to it."""

import pytest

from apps.webhooks import services, transport

from .receiver import Receiver


@pytest.fixture
def local_network(settings):
    """Posting to 127.0.0.1 over http:// allowed, as in development."""
    settings.WEBHOOK_ALLOW_HTTP = True
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True


@pytest.fixture
def receiver(local_network):
    server = Receiver()
    yield server
    transport.clients_close()
    server.close()


@pytest.fixture
def sweeper():
    """The Celery task's sweeper thread (services.webhook_deliveries_sweep), its connection closed afterwards."""
    yield services.webhook_deliveries_sweep
    services.webhook_sweeper_shutdown()
