"""Signed links a resident uses without an account: one-click unsubscribe, e-mail
confirmation, and managing their subscriptions.

A token carries what it is about (a contact point, a subscriber), an HMAC under the secret
key bound to its purpose, and, except for unsubscribe, an expiry. Nothing is stored: a
token cannot be guessed, forged for another resident, or reused for another purpose.
Unsubscribe tokens never expire, because RFC 8058 links sit in mail kept for years.
Changing the secret key invalidates every link.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from enum import StrEnum

_PURPOSE = b"unsubscribe:"
SIGNATURE_CHARS = 32
MANAGE = "manage"
CONFIRM = "confirm"


def unsubscribe_token(secret_key: str, contact_point_id: int) -> str:
    signature = hmac.new(
        secret_key.encode(), _PURPOSE + str(contact_point_id).encode(), hashlib.sha256
    ).hexdigest()[:SIGNATURE_CHARS]
    return f"{contact_point_id}.{signature}"


def unsubscribe_url(base_url: str, secret_key: str, contact_point_id: int) -> str:
    return f"{base_url}/u/{unsubscribe_token(secret_key, contact_point_id)}"


def read_unsubscribe_token(secret_key: str, token: str) -> int | None:
    """The contact point id a token was made for, or None if it is not one of ours."""
    head, _, signature = token.partition(".")
    # compare_digest refuses non-ASCII text: such a token is simply not ours.
    if not token.isascii() or not head.isdigit() or not signature or len(head) > 18:
        return None
    expected = unsubscribe_token(secret_key, int(head)).partition(".")[2]
    return int(head) if hmac.compare_digest(expected, signature) else None


class LinkState(StrEnum):
    VALID = "valid"
    FORGED = "forged"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class LinkCheck:
    state: LinkState
    subject: str = ""


def _signature(secret_key: str, purpose: str, subject: str, expires: int) -> str:
    message = f"{purpose}:{subject}:{expires}".encode()
    return hmac.new(secret_key.encode(), message, hashlib.sha256).hexdigest()[:SIGNATURE_CHARS]


def sign(secret_key: str, purpose: str, subject: str, expires: int) -> str:
    """A token for `subject` (digits and '-') serving `purpose` until `expires` (Unix s)."""
    return f"{subject}.{expires}.{_signature(secret_key, purpose, subject, expires)}"


def read(secret_key: str, purpose: str, token: str, now: float) -> LinkCheck:
    """Forged is told apart from expired only for a genuine signature, so a guesser learns
    nothing; an expired link was ours, and its holder is told to ask for a new one."""
    parts = token.split(".")
    if not token.isascii() or len(parts) != 3 or not parts[1].isdigit() or len(parts[1]) > 12:
        return LinkCheck(LinkState.FORGED)
    subject, expires, signature = parts
    expected = _signature(secret_key, purpose, subject, int(expires))
    if not hmac.compare_digest(expected, signature):
        return LinkCheck(LinkState.FORGED)
    if int(expires) <= now:
        return LinkCheck(LinkState.EXPIRED, subject)
    return LinkCheck(LinkState.VALID, subject)


def manage_token(secret_key: str, subscriber_id: int, expires: int) -> str:
    return sign(secret_key, MANAGE, str(subscriber_id), expires)


def read_manage_token(secret_key: str, token: str, now: float) -> tuple[LinkState, int]:
    """The state of a manage link and, unless forged, the subscriber id it names."""
    check = read(secret_key, MANAGE, token, now)
    if check.state is LinkState.FORGED or not check.subject.isdigit():
        return LinkState.FORGED, 0
    return check.state, int(check.subject)


def confirm_token(secret_key: str, contact_point_id: int, code: str, expires: int) -> str:
    """An e-mail confirmation link carries the address's one-time code, so that confirming
    goes through the same single-use, expiring, try-counting check as a typed code."""
    return sign(secret_key, CONFIRM, f"{contact_point_id}-{code}", expires)


def read_confirm_token(secret_key: str, token: str, now: float) -> tuple[LinkState, int, str]:
    """The state of a confirmation link, its contact point id and code (unless forged)."""
    check = read(secret_key, CONFIRM, token, now)
    point, _, code = check.subject.partition("-")
    if check.state is LinkState.FORGED or not point.isdigit() or not code.isdigit():
        return LinkState.FORGED, 0, ""
    return check.state, int(point), code
