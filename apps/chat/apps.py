from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "apps.chat"
    label = "chat"

    def ready(self):
        from apps.common.schema import register_bearer_scheme

        register_bearer_scheme(
            target_class="apps.chat.auth.AppTokenAuthentication",
            name="appToken",
            description="An app token or a user token from POST /api/v1/{org}/{app}/token.",
        )
