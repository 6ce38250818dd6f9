"""The application's clock (SPEC §3): timezone.now() only, ms at the API edge."""

from datetime import datetime

from django.utils import timezone


def now():
    return timezone.now()


def to_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def now_ms() -> int:
    return to_ms(timezone.now())
