"""Shared fixtures: clients, staff accounts and apps made through the services, as production does."""

import importlib
import os
import tempfile

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from rest_framework.test import APIClient

from apps.policy.services import app_create
from apps.tenancy.services import staff_create, staff_token_issue

PASSWORD = "correct-horse-battery"


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """On SQLite the test database is a file (one per pytest process), not memory.

    The integration tests of tests/background start real Celery worker
    processes, which must open the very database the test wrote to.
    """
    from django.conf import settings

    database = settings.DATABASES["default"]
    if database["ENGINE"] == "django.db.backends.sqlite3" and not database.get("TEST", {}).get("NAME"):
        name = os.path.join(tempfile.gettempdir(), f"receipts-console-test-{os.getpid()}.sqlite3")
        database.setdefault("TEST", {})["NAME"] = name


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup):
    """Close the long-poll wake-up connections (LISTEN/NOTIFY) before the test database is dropped."""
    yield
    from apps.events import wakeup

    wakeup.shutdown()


_DB_FIXTURES = {"db", "transactional_db", "live_server", "django_db_reset_sequences", "django_db_serialized_rollback"}


@pytest.fixture(autouse=True)
def _seed_rows_survive_flush(request):
    """Put the migration-seeded plans and role groups back if an earlier test flushed them.

    A transactional test (threads, real workers, live servers) ends with a
    flush that empties every table, seeds included; the next test would find
    no plans. The test's own DB fixture is set up first (it may come through
    another fixture, set up after this autouse one otherwise).
    """
    if not (_DB_FIXTURES & set(request.fixturenames) or request.node.get_closest_marker("django_db")):
        yield
        return
    # pytest-django's helper reads the marker and the requested fixtures to
    # choose a plain or a transactional database, as it would a moment later.
    request.getfixturevalue("_django_db_helper")
    from django.apps import apps as django_apps

    from apps.tenancy.models import PlanTier

    if not PlanTier.objects.exists():
        migration = importlib.import_module("apps.tenancy.migrations.0002_seed_plans_and_roles")
        migration.seed(django_apps, None)
    yield


@pytest.fixture(autouse=True)
def _fresh_cache():
    # SQLite reuses primary keys after a rollback: never let one test's cached
    # policy snapshot answer for another test's app (nor a token's principal, kept in the process-local copy).
    from apps.chat.token_local import local_tokens

    cache.clear()
    local_tokens.clear()
    yield
    cache.clear()
    local_tokens.clear()


@pytest.fixture(autouse=True)
def _fast_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def api_client():
    return APIClient()


def _staff_client(username, role=None, superuser=False):
    if superuser:
        get_user_model().objects.create_superuser(username=username, password=PASSWORD)
    else:
        staff_create(username=username, password=PASSWORD, role=role)
    token, _ = staff_token_issue(username=username, password=PASSWORD)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.fixture
def superuser_client(db):
    return _staff_client("root", superuser=True)


@pytest.fixture
def operator_client(db):
    return _staff_client("olivia", role="operator")


@pytest.fixture
def business_client(db):
    return _staff_client("bruno", role="business")


@pytest.fixture
def make_app(db):
    def make(org_name="acme", app_name="chat", plan="free"):
        app, secret = app_create(org_name=org_name, app_name=app_name, plan=plan)
        app.client_secret = secret
        return app

    return make


# --- webhooks: a real HTTP receiver on 127.0.0.1 (tests/webhooks/receiver.py), reachable once the settings allow it


@pytest.fixture
def local_network(settings):
    """Posting to 127.0.0.1 over http:// allowed, as in development."""
    settings.WEBHOOK_ALLOW_HTTP = True
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True


@pytest.fixture
def receiver(local_network):
    """A receiver that records what it is posted; the webhook transport's pooled connections are closed after."""
    from apps.webhooks import transport
    from tests.webhooks.receiver import Receiver

    server = Receiver()
    yield server
    transport.clients_close()
    server.close()
