"""App-API authentication: app tokens and user (device) tokens, scoped to the URL's app.

A token of another app, an expired or unknown token -> 401 unauthenticated.
An app token on a user endpoint, or a user token on an app endpoint -> 403 forbidden.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils import timezone
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import BasePermission

from apps.common.tokens import bearer_token, hash_token

from .models import AccessToken


@dataclass
class Principal:
    """Who calls the app API: always an app; for a user token also the user and its device."""

    app: object
    user: object | None = None
    device: object | None = None

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_app(self) -> bool:
        return self.user is None


class AppTokenAuthentication(BaseAuthentication):
    """`Authorization: Bearer <token>` from POST /api/v1/{org}/{app}/token; one query."""

    def authenticate(self, request):
        token = bearer_token(request)
        if token is None:
            return None
        kwargs = request.parser_context["kwargs"] if getattr(request, "parser_context", None) else {}
        record = (
            AccessToken.objects.select_related("app", "app__plan", "user", "device")
            .filter(key_hash=hash_token(token), expires_at__gt=timezone.now())
            .first()
        )
        if record is None:
            raise AuthenticationFailed("The token is unknown or has expired.")
        if (record.app.org_name, record.app.app_name) != (kwargs.get("org_name"), kwargs.get("app_name")):
            # A token is useless on another app's base path.
            raise AuthenticationFailed("The token belongs to another app.")
        return Principal(app=record.app, user=record.user, device=record.device), record

    def authenticate_header(self, request):
        return "Bearer"


class IsAppToken(BasePermission):
    message = "This endpoint needs an app token (client_credentials)."

    def has_permission(self, request, view):
        return isinstance(request.user, Principal) and request.user.is_app


class IsUserToken(BasePermission):
    message = "This endpoint needs a user token (password grant)."

    def has_permission(self, request, view):
        return isinstance(request.user, Principal) and not request.user.is_app
