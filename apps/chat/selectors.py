from __future__ import annotations

from apps.tenancy.models import App


def app_for_path(*, org_name: str, app_name: str) -> App | None:
    """The app a base path names, with its plan, or None."""
    return App.objects.select_related("plan").filter(org_name=org_name, app_name=app_name).first()
