"""Routes of the web console, mounted at /console/."""

from django.urls import path

from . import views, views_audit, views_lifecycle, views_lookup, views_risky, views_staff

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
    path("apps/<str:org_name>/<str:app_name>/dashboard/", page(views.DashboardView), name="app-dashboard"),
    path("apps/<str:org_name>/<str:app_name>/webhooks/", page(views.WebhooksView), name="app-webhooks"),
    path("apps/<str:org_name>/<str:app_name>/webhooks/new/", page(views.WebhookCreateView), name="webhook-create"),
    path("apps/<str:org_name>/<str:app_name>/webhooks/<int:endpoint_id>/enabled/", page(views.WebhookEnabledView),
         name="webhook-enabled"),
    path("apps/<str:org_name>/<str:app_name>/webhooks/<int:endpoint_id>/test/", page(views.WebhookTestView),
         name="webhook-test"),
    path("apps/<str:org_name>/<str:app_name>/webhooks/<int:endpoint_id>/rotate/", page(views.WebhookRotateView),
         name="webhook-rotate"),
    path("apps/<str:org_name>/<str:app_name>/webhooks/<int:endpoint_id>/delete/", page(views.WebhookDeleteView),
         name="webhook-delete"),
    path("apps/<str:org_name>/<str:app_name>/webhooks/<int:endpoint_id>/deliveries/<int:delivery_id>/redeliver/",
         page(views.WebhookRedeliverView), name="webhook-redeliver"),
    path("apps/<str:org_name>/<str:app_name>/groups/", page(views.GroupLookupView), name="group-lookup"),
    path("apps/<str:org_name>/<str:app_name>/groups/<str:group_id>/", page(views.GroupDetailView),
         name="group-detail"),
    path("apps/<str:org_name>/<str:app_name>/groups/<str:group_id>/delete/", page(views.GroupOverrideDeleteView),
         name="group-override-delete"),
    # Risky changes ask first (SPEC §13)
    path("apps/<str:org_name>/<str:app_name>/switches/confirm/", page(views_risky.SwitchConfirmView),
         name="app-switch-confirm"),
    path("apps/<str:org_name>/<str:app_name>/limits/confirm/", page(views_risky.LimitsConfirmView),
         name="app-limits-confirm"),
    # App lifecycle and look-ups (SPEC §13): views_lifecycle, views_lookup
    path("apps/<str:org_name>/<str:app_name>/secret/", page(views_lifecycle.SecretRotateView),
         name="app-rotate-secret"),
    path("apps/<str:org_name>/<str:app_name>/suspend/", page(views_lifecycle.SuspendView), name="app-suspend"),
    path("apps/<str:org_name>/<str:app_name>/resume/", page(views_lifecycle.ResumeView), name="app-resume"),
    path("apps/<str:org_name>/<str:app_name>/users/", page(views_lookup.ChatUserLookupView), name="user-lookup"),
    path("apps/<str:org_name>/<str:app_name>/users/<str:username>/", page(views_lookup.ChatUserDetailView),
         name="user-detail"),
    path("apps/<str:org_name>/<str:app_name>/messages/", page(views_lookup.MessageLookupView),
         name="message-lookup"),
    path("apps/<str:org_name>/<str:app_name>/messages/<str:message_id>/", page(views_lookup.MessageDetailView),
         name="message-detail"),
    path("assets/<str:name>", views.asset, name="asset"),
    # --- staff, audit trails and CSV exports (SPEC §13 "Staff", "Audit", "Dashboard"): views_staff, views_audit
    path("apps/<str:org_name>/<str:app_name>/audit/", page(views_audit.AuditListView), name="app-audit"),
    path("apps/<str:org_name>/<str:app_name>/audit.csv", page(views_audit.AuditCsvView), name="app-audit-csv"),
    path("apps/<str:org_name>/<str:app_name>/dashboard.csv", page(views_audit.DashboardCsvView),
         name="app-dashboard-csv"),
    path("staff/", page(views_staff.StaffListView), name="staff-list"),
    path("staff/new/", page(views_staff.StaffCreateView), name="staff-create"),
    path("staff/audit/", page(views_audit.StaffAuditView), name="staff-audit"),
    path("staff/audit.csv", page(views_audit.StaffAuditCsvView), name="staff-audit-csv"),
    path("staff/accounts/<str:username>/", page(views_staff.StaffDetailView), name="staff-detail"),
    path("password/", page(views_staff.OwnPasswordView), name="password"),
]
