"""Routes of the web console, mounted at /console/."""

from django.urls import path

from . import views

app_name = "console"


def page(view):
    return views.console_headers(view.as_view())


urlpatterns = [
    path("", page(views.AppListView), name="app-list"),
    path("login/", page(views.LoginView), name="login"),
    path("logout/", page(views.LogoutView), name="logout"),
    path("apps/new/", page(views.AppCreateView), name="app-create"),
    path("apps/<str:org_name>/<str:app_name>/", page(views.AppDetailView), name="app-detail"),
    path("apps/<str:org_name>/<str:app_name>/switches/", page(views.SwitchUpdateView), name="app-switch"),
    path("apps/<str:org_name>/<str:app_name>/limits/", page(views.PolicyUpdateView), name="app-limits"),
    path("apps/<str:org_name>/<str:app_name>/privacy/", page(views.PrivacyUpdateView), name="app-privacy"),
    path("apps/<str:org_name>/<str:app_name>/audit/", page(views.AuditListView), name="app-audit"),
    path("apps/<str:org_name>/<str:app_name>/dashboard/", page(views.DashboardView), name="app-dashboard"),
    path("assets/<str:name>", views.asset, name="asset"),
]
