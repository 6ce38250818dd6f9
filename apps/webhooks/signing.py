"""Standard Webhooks signatures (standardwebhooks.com), made with the specification's own Python library.

Receivers verify with any Standard Webhooks library: `Webhook(secret).verify(body, headers)`.
"""

from __future__ import annotations

import base64
import secrets
from datetime import datetime

from standardwebhooks import Webhook

SECRET_PREFIX = "whsec_"
# The specification asks for 24 to 64 random bytes; 32 is an HMAC-SHA256 key's own size.
SECRET_BYTES = 32


def secret_generate() -> str:
    """A new endpoint secret: `whsec_` + base64 of SECRET_BYTES random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def signature_header(*, secrets_in_force: list[str], webhook_id: str, moment: datetime, body: str) -> str:
    """The `webhook-signature` value: one `v1,<base64 HMAC-SHA256>` per secret, space-separated.

    During a rotation's overlap both the new and the previous secret sign, so a receiver holding either verifies.
    """
    return " ".join(Webhook(secret).sign(msg_id=webhook_id, timestamp=moment, data=body) for secret in secrets_in_force)
