from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from apps.common.observability import metrics_view
from apps.common.views import healthz

# Each app lists its own routes; the API's URL trees are put together here, above every app, so that no app
# includes another's routes (an include by name is an import: the apps would depend on each other).
admin_api = [
    path("", include("apps.tenancy.urls")),
    path("", include("apps.policy.urls")),
    path("", include("apps.webhooks.urls")),
    path("", include("apps.chat.admin_urls")),
]
# Read receipts first: the hottest routes, and Django tries the patterns in order. No route of one list can match
# another's paths, so the order changes nothing else.
app_api = [
    path("", include("apps.receipts.urls")),
    path("", include("apps.chat.urls")),
]

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    # Prometheus text behind METRICS_TOKEN (docs/OPERATIONS.md, "Metrics and logs"); not part of the API.
    path("metrics", metrics_view, name="metrics"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    # The admin API first: `admin` is reserved and never a valid org_name.
    path("api/v1/admin/", include(admin_api)),
    path("api/v1/<str:org_name>/<str:app_name>/", include(app_api)),
    path("console/", include("apps.console.urls")),
    path("django-admin/", admin.site.urls),
]

handler400 = "apps.common.views.bad_request"
handler404 = "apps.common.views.not_found"
handler500 = "apps.common.views.server_error"
