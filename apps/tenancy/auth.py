"""Admin-API authentication (staff bearer tokens), role permissions and StaffApi, the base of every admin endpoint."""

from __future__ import annotations

from django.utils import timezone
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import BasePermission

from apps.common.apiview import CycleFreeAPIView
from apps.common.tokens import bearer_token, hash_token

from .models import StaffToken
from .roles import OPERATOR, staff_roles


class StaffTokenAuthentication(BaseAuthentication):
    """`Authorization: Bearer <token>` from POST /api/v1/admin/token; one query."""

    def authenticate(self, request):
        token = bearer_token(request)
        if token is None:
            return None
        record = (
            StaffToken.objects.select_related("user")
            .filter(key_hash=hash_token(token), expires_at__gt=timezone.now())
            .first()
        )
        if record is None or not record.user.is_active:
            raise AuthenticationFailed("The token is unknown or has expired.")
        return record.user, record

    def authenticate_header(self, request):
        return "Bearer"


class IsStaffMember(BasePermission):
    message = "Only staff (operator, business or superuser) may do this."

    def has_permission(self, request, view):
        return bool(request.user) and bool(staff_roles(request.user))


class IsOperator(BasePermission):
    message = "Only operators and superusers may do this."

    def has_permission(self, request, view):
        return bool(request.user) and OPERATOR in staff_roles(request.user)


class IsSuperuser(BasePermission):
    message = "Only superusers may do this."

    def has_permission(self, request, view):
        return bool(request.user) and request.user.is_superuser


# Base of the admin-API endpoints (tenancy, policy, audit): a staff token of a staff member. A comment, not a
# docstring: drf-spectacular would show a docstring as the description of every operation without one.
class StaffApi(CycleFreeAPIView):
    authentication_classes = [StaffTokenAuthentication]
    permission_classes = [IsStaffMember]
