"""The app API's plumbing, shared by the endpoints of chat and receipts: DRF authentication and permissions for app
and user tokens, scoped to the URL's app, and the base views.

A token of another app, an expired or unknown token -> 401 unauthenticated.
A token of a suspended app (SPEC §13) -> 403 app_suspended.
An app token on a user endpoint, or a user token on an app endpoint -> 403 forbidden.
"""

from django.http import HttpResponse
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import BasePermission

from apps.common.apiview import CycleFreeAPIView
from apps.common.exceptions import ApplicationError
from apps.common.renderers import SafeJSONRenderer
from apps.common.tokens import bearer_token

from .auth import Principal, authenticate_principal, principal_serves
from .exceptions import AppSuspended


class AppTokenAuthentication(BaseAuthentication):
    """`Authorization: Bearer <token>` from POST /api/v1/{org}/{app}/token; the cache or one query."""

    def token_of(self, request) -> str | None:
        return bearer_token(request)

    def authenticate(self, request):
        token = self.token_of(request)
        if token is None:
            return None
        kwargs = request.parser_context["kwargs"] if getattr(request, "parser_context", None) else {}
        principal = authenticate_principal(token)
        if principal is None:
            raise AuthenticationFailed("The token is unknown or has expired.")
        if not principal_serves(principal, kwargs):
            raise AuthenticationFailed("The token belongs to another app.")
        if principal.app.suspended:
            raise AppSuspended("This app is suspended: its tokens are refused until an operator resumes it.")
        return principal, None

    def authenticate_header(self, request):
        return "Bearer"


class HeaderOrQueryTokenAuthentication(AppTokenAuthentication):
    """The same, also taking `?access_token=` when there is no Authorization header: a browser's EventSource
    cannot send headers (GET /events/stream, SPEC §14)."""

    def token_of(self, request) -> str | None:
        token = bearer_token(request)
        if token is None:
            token = request.query_params.get("access_token") or None
        return token


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


class IsAnyToken(BasePermission):
    message = "This endpoint needs an app token or a user token."

    def has_permission(self, request, view):
        return isinstance(request.user, Principal)


class AppTokenApi(CycleFreeAPIView):
    """Base of endpoints that need an app token (the customer's server)."""

    authentication_classes = [AppTokenAuthentication]
    permission_classes = [IsAppToken]


class UserTokenApi(CycleFreeAPIView):
    """Base of endpoints that need a user token (the client SDK)."""

    authentication_classes = [AppTokenAuthentication]
    permission_classes = [IsUserToken]


class StreamUserTokenApi(UserTokenApi):
    """A user-token endpoint that also takes the token as `?access_token=` (EventSource)."""

    authentication_classes = [HeaderOrQueryTokenAuthentication]


class AnyTokenApi(CycleFreeAPIView):
    """Base of endpoints both token kinds call: a user token reads as that user, an app token as the customer's
    server (request.user.user is None)."""

    authentication_classes = [AppTokenAuthentication]
    permission_classes = [IsAnyToken]


class LeanPostUserTokenApi(UserTokenApi):
    """A user-token endpoint whose POST, when it is authorised, skips DRF's per-request machinery: for the read
    acks, the hottest calls of the API (bench/: Django's handler, DRF and the middleware together were ~0.9 ms
    of a group ack's ~3 ms of server CPU; DRF's request wrapping, negotiation, permissions and rendering the
    largest part).

    `post` stays the documented DRF handler (and the schema's source); `lean_post(principal, **url_kwargs)`
    returns the 200 body or raises an ApplicationError, and both call the same service.
    - The lean path runs only when DRF would get as far as calling post(): a bearer token of a live user
      principal of this URL's app, not suspended (the same authenticate_principal, cache and checks as
      AppTokenAuthentication and IsUserToken). Anything else (no, bad or expired token, a suspended app, an app
      token, another app's token, another method) goes through DRF's dispatch unchanged, so those answers and
      their headers stay DRF's.
    - An ApplicationError gets the envelope api_exception_handler gives it (payload and status), rendered by
      the API's renderer, as is the 200 body: the bytes are DRF's (tests/receipts/test_api_lean_post.py).
    """

    _renderer = SafeJSONRenderer()

    def lean_post(self, principal, **url_kwargs) -> dict:
        raise NotImplementedError

    def dispatch(self, request, *args, **kwargs):
        if request.method == "POST":
            token = bearer_token(request)
            principal = authenticate_principal(token) if token is not None else None
            # What AppTokenAuthentication and IsUserToken let through, with the same functions.
            if (principal is not None and principal_serves(principal, kwargs) and not principal.app.suspended
                    and IsUserToken.allows(principal)):
                try:
                    return self._lean_response(self.lean_post(principal, **kwargs), 200)
                except ApplicationError as exc:
                    return self._lean_response(exc.as_payload(), exc.status)
        return super().dispatch(request, *args, **kwargs)

    def _lean_response(self, data: dict, status_code: int) -> HttpResponse:
        response = HttpResponse(self._renderer.render(data), status=status_code, content_type="application/json")
        response["Allow"] = ", ".join(self.allowed_methods)  # as DRF's default_response_headers
        return response
