"""App-API authentication: app tokens and user (device) tokens, scoped to the URL's app.

A token of another app, an expired or unknown token -> 401 unauthenticated.
An app token on a user endpoint, or a user token on an app endpoint -> 403 forbidden.

Every app-API request authenticates, so a known token is served from the cache (Redis in production) for
TOKEN_CACHE_SECONDS (60 s), keyed by the token's hash:
- only what a request needs is cached (app, user and device ids and names, the device's options, expiry);
  other fields load lazily from the database if anything ever reads them;
- the expiry is checked on every request, cached or not, and an entry never outlives its token;
- an entry is dropped when it would become wrong: a login on the same device replaces the device's options
  (user_token_issue), and a deleted token (revoked in the Django admin, or deleted with its user, device or
  app) is dropped by the post_delete receiver below;
- unknown tokens are never cached (random guesses must not fill the cache).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.db.models.signals import post_delete
from django.dispatch import receiver
from django.utils import timezone
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import BasePermission

from apps.common.tokens import bearer_token, hash_token
from apps.tenancy.models import App

from .models import AccessToken, ChatUser, DeviceSession

# In the models' field order: Model.from_db takes values in that order.
_APP_FIELDS = ("id", "org_name", "app_name")
_USER_FIELDS = ("id", "app_id", "username")
_DEVICE_FIELDS = ("id", "user_id", "device_id", "require_ack", "require_delivery_ack")


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


def token_cache_key(key_hash: str) -> str:
    return f"app-token:v1:{key_hash}"


def token_cache_forget(key_hashes) -> None:
    """Drop the cached principals of these token hashes (a no-op for hashes that are not cached)."""
    keys = [token_cache_key(key_hash) for key_hash in key_hashes]
    if keys:
        cache.delete_many(keys)


@receiver(post_delete, sender=AccessToken, dispatch_uid="chat-access-token-cache-forget")
def _forget_deleted_token(sender, instance, **kwargs):
    # Cache coherence, not a business rule: a revoked token must stop working at once, not after the TTL.
    token_cache_forget([instance.key_hash])


def _principal_row(record: AccessToken) -> tuple:
    """The cacheable part of a token: plain values only (cheap to pickle, no model state)."""
    app, user, device = record.app, record.user, record.device
    return (
        record.expires_at.timestamp(),
        tuple(getattr(app, f) for f in _APP_FIELDS),
        tuple(getattr(user, f) for f in _USER_FIELDS) if user is not None else None,
        tuple(getattr(device, f) for f in _DEVICE_FIELDS) if device is not None else None,
    )


def _principal_from_row(row: tuple) -> Principal:
    _, app, user, device = row
    # from_db: the fields not cached are deferred, so reading one loads it rather than inventing a value.
    return Principal(
        app=App.from_db("default", _APP_FIELDS, app),
        user=ChatUser.from_db("default", _USER_FIELDS, user) if user is not None else None,
        device=DeviceSession.from_db("default", _DEVICE_FIELDS, device) if device is not None else None,
    )


def authenticate_principal(token: str) -> Principal | None:
    """The principal of a live token, from the cache or one query; None for an unknown or expired token."""
    key_hash = hash_token(token)
    key = token_cache_key(key_hash)
    now = timezone.now().timestamp()
    row = cache.get(key)
    if row is None:
        record = (
            AccessToken.objects.select_related("app", "user", "device")
            .filter(key_hash=key_hash, expires_at__gt=timezone.now())
            .first()
        )
        if record is None:
            return None
        row = _principal_row(record)
        ttl = min(settings.TOKEN_CACHE_SECONDS, int(row[0] - now))
        if ttl > 0:
            cache.set(key, row, ttl)
    if row[0] <= now:
        return None
    return _principal_from_row(row)


def principal_serves(principal: Principal, url_kwargs: dict) -> bool:
    """Whether the principal's app is the one the URL names: a token is useless on another app's base path."""
    return (principal.app.org_name, principal.app.app_name) == (url_kwargs.get("org_name"), url_kwargs.get("app_name"))


class AppTokenAuthentication(BaseAuthentication):
    """`Authorization: Bearer <token>` from POST /api/v1/{org}/{app}/token; the cache or one query."""

    def authenticate(self, request):
        token = bearer_token(request)
        if token is None:
            return None
        kwargs = request.parser_context["kwargs"] if getattr(request, "parser_context", None) else {}
        principal = authenticate_principal(token)
        if principal is None:
            raise AuthenticationFailed("The token is unknown or has expired.")
        if not principal_serves(principal, kwargs):
            raise AuthenticationFailed("The token belongs to another app.")
        return principal, None

    def authenticate_header(self, request):
        return "Bearer"


class IsAppToken(BasePermission):
    message = "This endpoint needs an app token (client_credentials)."

    def has_permission(self, request, view):
        return isinstance(request.user, Principal) and request.user.is_app


class IsUserToken(BasePermission):
    message = "This endpoint needs a user token (password grant)."

    @staticmethod
    def allows(principal) -> bool:
        return isinstance(principal, Principal) and not principal.is_app

    def has_permission(self, request, view):
        return self.allows(request.user)
