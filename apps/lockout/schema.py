"""OpenAPI: the Retry-After a locked sign-in answers with (429 rate_limited on the token endpoints)."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter

RETRY_AFTER = OpenApiParameter(
    "Retry-After", OpenApiTypes.INT, location=OpenApiParameter.HEADER, response=[429],
    description="Seconds until signing in is allowed again (too many failed attempts for this name or address).",
)
