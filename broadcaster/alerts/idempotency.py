"""Idempotent creation: a client that retries a create after a timeout gets the alert its
first try made, not a second alert.

The key is the client's (`Idempotency-Key` header), scoped to the operator who sent it,
and stored with a hash of the request. The same key with the same request returns the
same alert; the same key with another request is refused, since answering with an alert
the client did not describe would be worse than an error.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from broadcaster.alerts.models import Alert, IdempotencyKey
from broadcaster.alerts.services import get_alert
from broadcaster.errors import InvalidInput
from broadcaster.staff.models import Operator

HEADER = "Idempotency-Key"
_KEY = re.compile(r"[\x21-\x7e]{1,255}")


class KeyRace(Exception):
    """Another request with the same key committed first: retry to read its answer."""


def request_hash(body: Any) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def check_key(key: str) -> str:
    if not _KEY.fullmatch(key):
        raise InvalidInput(HEADER, "must be 1-255 visible ASCII characters")
    return key


def create_once(
    *,
    session: Session,
    operator: Operator,
    key: str,
    body: Any,
    create: Callable[[], Alert],
) -> tuple[Alert, bool]:
    """The alert made under `key`, and whether this call made it (False: a repeat)."""
    check_key(key)
    digest = request_hash(body)
    earlier = session.scalar(
        select(IdempotencyKey).where(
            IdempotencyKey.operator_id == operator.id, IdempotencyKey.key == key
        )
    )
    if earlier is not None:
        if earlier.request_hash != digest:
            raise InvalidInput(HEADER, "was already used with a different request")
        return get_alert(session=session, alert_id=earlier.alert_id), False
    alert = create()
    try:
        with session.begin_nested():
            session.add(
                IdempotencyKey(
                    operator_id=operator.id, key=key, request_hash=digest, alert_id=alert.id
                )
            )
    except IntegrityError:
        # The racing request's key is committed now (the unique index waited for it):
        # the caller rolls this transaction back, alert and all, and reads that answer.
        raise KeyRace() from None
    return alert, True
