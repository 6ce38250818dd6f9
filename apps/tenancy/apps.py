from django.apps import AppConfig


class TenancyConfig(AppConfig):
    name = "apps.tenancy"
    label = "tenancy"

    def ready(self):
        from apps.common.schema import register_bearer_scheme

        register_bearer_scheme(
            target_class="apps.tenancy.auth.StaffTokenAuthentication",
            name="staffToken",
            description="A staff token from POST /api/v1/admin/token.",
        )
