"""One row per failed secret check, kept for the lockout window only (SPEC §9 "One lockout for every password")."""

from django.db import models


class LoginFailure(models.Model):
    """A failed check of a secret: who was named, from which client address, when.

    One row per failure (not a counter per name) because the window slides: the limiter counts the failures
    of the last LOGIN_LOCKOUT_SECONDS, so it needs each one's time. Rows older than the window are deleted
    as new failures come in, so the table holds at most one window of failures.
    """

    # "alice" (staff), "user:org#app:bob" (chat user), "client:YX…" (client_id); see apps/lockout/services.py.
    name = models.CharField(max_length=255)
    address = models.CharField(max_length=64)
    at = models.DateTimeField()

    class Meta:
        indexes = [
            # The lock check: this address's failures in the window (the name's are counted in the same scan).
            models.Index(fields=["address", "at"], name="lockout_failure_address_at"),
            # Pruning rows that left the window.
            models.Index(fields=["at"], name="lockout_failure_at"),
        ]

    def __str__(self):
        return f"{self.name} from {self.address} at {self.at:%Y-%m-%d %H:%M:%S}"
