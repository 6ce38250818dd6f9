"""Console fixtures: signed-in Django test clients per role, and Debian's chromium for the browser tests."""

import importlib
import os
from pathlib import Path

import pytest
from django.apps import apps as django_apps
from django.contrib.auth import get_user_model
from django.test import Client

from apps.tenancy.services import staff_create
from tests.conftest import PASSWORD

# Playwright's sync API keeps an event loop running in the main thread from the first browser test to the
# end of the session; Django would refuse ORM calls from the test body (setting up data) without this.
# The live server's own threads are unaffected.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items):
    """Browser tests run last (after pytest-django's own ordering, which the stable sort keeps).

    The event loop playwright starts lives until the session ends: no other test should run beside it.
    """
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "screenshots"


@pytest.fixture
def operator_user(db):
    return staff_create(username="olga", password=PASSWORD, role="operator")


@pytest.fixture
def business_user(db):
    return staff_create(username="bianca", password=PASSWORD, role="business")


@pytest.fixture
def superuser(db):
    return get_user_model().objects.create_superuser(username="sam", password=PASSWORD)


def _signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def operator_console(operator_user):
    return _signed_in(operator_user)


@pytest.fixture
def business_console(business_user):
    return _signed_in(business_user)


@pytest.fixture
def superuser_console(superuser):
    return _signed_in(superuser)


# --- browser tests (pytest-playwright's fixtures, pointed at Debian's chromium; never `playwright install`)

@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "headless": True,
        "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
    }


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    # Clipboard permissions so the test can read back what the copy button copied.
    return {**browser_context_args, "viewport": {"width": 1280, "height": 860},
            "permissions": ["clipboard-read", "clipboard-write"]}


@pytest.fixture
def seeded_db(transactional_db):
    """The plans and role groups of the seed migration, for tests on the live server.

    A transactional test's teardown flushes every table, and serialized_rollback does not restore the
    migration's rows once playwright's event loop runs (pytest-django #1117): seed again, idempotently,
    with the migration's own function.
    """
    migration = importlib.import_module("apps.tenancy.migrations.0002_seed_plans_and_roles")
    migration.seed(django_apps, None)


@pytest.fixture
def screenshot():
    """Save a full-page screenshot under screenshots/ (gitignored) and return its path."""
    SCREENSHOTS.mkdir(exist_ok=True)

    def take(page, name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take
