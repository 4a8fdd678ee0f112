"""Signed links a resident can use without an account (one-click unsubscribe).

The token carries the contact point's id and an HMAC of it under the secret key: it
cannot be guessed or forged for another contact point, and needs no storage.
"""

from __future__ import annotations

import hashlib
import hmac

_PURPOSE = b"unsubscribe:"


def unsubscribe_token(secret_key: str, contact_point_id: int) -> str:
    signature = hmac.new(
        secret_key.encode(), _PURPOSE + str(contact_point_id).encode(), hashlib.sha256
    ).hexdigest()[:32]
    return f"{contact_point_id}.{signature}"


def unsubscribe_url(base_url: str, secret_key: str, contact_point_id: int) -> str:
    return f"{base_url}/u/{unsubscribe_token(secret_key, contact_point_id)}"


def read_unsubscribe_token(secret_key: str, token: str) -> int | None:
    """The contact point id a token was made for, or None if it is not one of ours."""
    head, _, signature = token.partition(".")
    if not head.isdigit() or not signature:
        return None
    expected = unsubscribe_token(secret_key, int(head)).partition(".")[2]
    return int(head) if hmac.compare_digest(expected, signature) else None
