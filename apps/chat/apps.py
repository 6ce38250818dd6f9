from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "apps.chat"
    label = "chat"

    def ready(self):
        from django.db.models.signals import post_delete, post_save

        from apps.common.schema import register_bearer_scheme
        from apps.tenancy.models import App

        from .auth import forget_app_tokens_on_suspension, forget_deleted_token
        from .models import AccessToken

        # Here, not where the URL routes happen to import auth.py: every process (web, Celery worker,
        # manage.py shell or command) must drop a deleted token's cached principal (SPEC §9, revocation).
        post_delete.connect(forget_deleted_token, sender=AccessToken, dispatch_uid="chat-access-token-cache-forget")
        # Likewise an app suspended or resumed (SPEC §13): its cached principals carry `suspended`.
        post_save.connect(forget_app_tokens_on_suspension, sender=App, dispatch_uid="chat-app-suspension-cache-forget")

        register_bearer_scheme(
            target_class="apps.chat.api_base.AppTokenAuthentication",
            name="appToken",
            description="An app token or a user token from POST /api/v1/{org}/{app}/token.",
        )
        # GET /events/stream takes the same token, also as ?access_token= (documented as a query parameter there).
        register_bearer_scheme(
            target_class="apps.chat.api_base.HeaderOrQueryTokenAuthentication",
            name="streamToken",
            description="A user token from POST /api/v1/{org}/{app}/token (or as ?access_token=).",
        )
