from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from apps.common.observability import metrics_view
from apps.common.views import healthz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    # Prometheus text behind METRICS_TOKEN (docs/OPERATIONS.md, "Metrics and logs"); not part of the API.
    path("metrics", metrics_view, name="metrics"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    # The admin API first: `admin` is reserved and never a valid org_name.
    path("api/v1/admin/", include("apps.tenancy.urls")),
    path("api/v1/admin/", include("apps.webhooks.urls")),
    path("api/v1/<str:org_name>/<str:app_name>/", include("apps.chat.urls")),
    path("console/", include("apps.console.urls")),
    path("django-admin/", admin.site.urls),
]

handler400 = "apps.common.views.bad_request"
handler404 = "apps.common.views.not_found"
handler500 = "apps.common.views.server_error"
