"""The audit trail: append-only, hash-chained, verifiable.

Each record's hash is an HMAC, keyed outside the database (derived from the secret key),
over its own fields and the previous record's hash: editing, deleting or reordering any
record breaks the chain from that record on, and whoever can write the database but does
not hold the key cannot forge a chain that verifies. The database refuses UPDATE, DELETE
and TRUNCATE on the table (triggers in the migration); the verifier is for what someone
with the owner's rights did anyway.

The tip (the newest record's seq and hash) is kept in `audit_head` with a seal: an HMAC
over the two under the same key. Cutting records off the end and setting the tip to the
new last record's (seq, hash), both readable in the database, leaves a seal that does not
match, and the verifier says so. What the seal cannot stop is a tip put back as it was
at an earlier moment (the three values copied then) together with every record after it
deleted: nothing inside the database can tell an old tip from the newest. A checkpoint
(the tip's seq and hash at a moment, sealed, printed by `broadcaster audit checkpoint`,
by the API's `/audit/checkpoint` and every hour to the workers' log) is what an auditor
keeps outside the database: the verifier given checkpoints checks that the record at each
checkpoint's seq is still there with the same hash, so records cut after the checkpoint
was taken show, whatever was done to the tip. Records appended after the newest
checkpoint and then removed together with the tip's rollback are the one cut nobody can
see: keep checkpoints often.

Appending takes the head row's lock (an UPDATE) for the rest of the caller's transaction:
appenders are serialised and the chain never forks, and a record commits with the action
it describes or not at all. Lock order: an action locks the rows it changes first and the
chain's head last, so two audited actions never wait on each other in a circle.

Payloads never carry personal data (people appear by id), so erasing a resident never
touches the chain. The key reaches `record` through the session (`session.info`), set by
`make_sessionmaker`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, insert, select, update
from sqlalchemy.orm import Session

from broadcaster.audit.models import AuditEvent, AuditHead
from broadcaster.db.engine import AUDIT_KEY, utcnow

GENESIS_HASH = "0" * 64
HEAD_ID = 1
# Keys that would smuggle personal data into the chain; refused at any depth.
PERSONAL_KEYS = frozenset(
    {"address", "phone", "email", "token", "code", "name", "password", "number", "text"}
)

HEX = re.compile(r"[0-9a-f]{64}")
# The seal of a tip that was moved without the key: no HMAC is ever this, so the tip
# stays unsealed whatever is appended after it, until someone holding the key looks.
UNSEALED = "-" * 64
_log = logging.getLogger(__name__)

_events = cast(Table, AuditEvent.__table__)
HEAD_TABLE = cast(Table, AuditHead.__table__)


def canonical_json(payload: Mapping[str, Any]) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def chain_hash(
    *,
    key: bytes,
    prev_hash: str,
    seq: int,
    occurred_at: datetime,
    actor: str,
    action: str,
    object_type: str,
    object_id: str,
    payload: str,
) -> str:
    material = canonical_json(
        {
            "prev": prev_hash,
            "seq": seq,
            "at": occurred_at.isoformat(),
            "actor": actor,
            "action": action,
            "object": [object_type, object_id],
            "payload": payload,
        }
    )
    return hmac.new(key, material.encode(), hashlib.sha256).hexdigest()


def seal_of(*, key: bytes, seq: int, tip_hash: str) -> str:
    """The tip's seal: whoever lacks the key cannot point the tip anywhere else."""
    material = canonical_json({"tip": seq, "hash": tip_hash})
    return hmac.new(key, material.encode(), hashlib.sha256).hexdigest()


def key_of(session: Session) -> bytes:
    key = session.info.get(AUDIT_KEY)
    if not isinstance(key, bytes):
        raise RuntimeError("this session has no audit key: build it with make_sessionmaker")
    return key


def _personal_keys(payload: Any) -> set[str]:
    if isinstance(payload, Mapping):
        found = set(PERSONAL_KEYS.intersection(str(key).lower() for key in payload))
        for value in payload.values():
            found |= _personal_keys(value)
        return found
    if isinstance(payload, list | tuple):
        return set().union(*(_personal_keys(item) for item in payload)) if payload else set()
    return set()


def same_digest(found: object, expected: str) -> bool:
    """Constant-time equality of a stored value (whatever the database holds) and ours."""
    return isinstance(found, str) and hmac.compare_digest(
        found.encode("utf-8", "surrogatepass"), expected.encode()
    )


def is_sealed(key: bytes, seq: int, tip_hash: str, seal: object) -> bool:
    return same_digest(seal, seal_of(key=key, seq=seq, tip_hash=tip_hash))


def record(
    *,
    session: Session,
    actor: str,
    action: str,
    object_type: str,
    object_id: object,
    payload: Mapping[str, Any] | None = None,
) -> int:
    """Append one record to the chain in the caller's transaction; returns its seq.

    `actor` is "operator:<id>", "subscriber:<id>" or "system:<component>".
    """
    payload = dict(payload or {})
    personal = _personal_keys(payload)
    if personal:
        raise ValueError(f"audit payload must not carry personal data: {sorted(personal)}")
    key = key_of(session)
    seq, prev_hash, prev_seal = session.execute(
        update(HEAD_TABLE)
        .where(HEAD_TABLE.c.id == HEAD_ID)
        .values(seq=HEAD_TABLE.c.seq + 1)
        .returning(HEAD_TABLE.c.seq, HEAD_TABLE.c.hash, HEAD_TABLE.c.seal)
    ).one()
    # A tip moved without the key stays unsealed: appending must not launder it.
    sealed = is_sealed(key, seq - 1, prev_hash, prev_seal)
    if not sealed:
        _log.error("the audit trail's tip (seq %s) is not sealed: run `audit verify`", seq - 1)
    occurred_at = utcnow()
    body = canonical_json(payload)
    digest = chain_hash(
        key=key,
        prev_hash=prev_hash,
        seq=seq,
        occurred_at=occurred_at,
        actor=actor,
        action=action,
        object_type=object_type,
        object_id=str(object_id),
        payload=body,
    )
    session.execute(
        insert(_events).values(
            seq=seq,
            occurred_at=occurred_at,
            actor=actor,
            action=action,
            object_type=object_type,
            object_id=str(object_id),
            payload=body,
            prev_hash=prev_hash,
            hash=digest,
        )
    )
    session.execute(
        update(HEAD_TABLE)
        .where(HEAD_TABLE.c.id == HEAD_ID)
        .values(
            hash=digest, seal=seal_of(key=key, seq=seq, tip_hash=digest) if sealed else UNSEALED
        )
    )
    return int(seq)


def payload_of(event: AuditEvent) -> dict[str, Any] | str:
    """A record's payload as written (a JSON object), or its stored text as it is when
    that text is no longer one: the listing shows what was changed, the verifier names it."""
    try:
        payload = json.loads(event.payload)
    except (ValueError, TypeError, RecursionError):
        return str(event.payload)
    return payload if isinstance(payload, dict) else str(event.payload)


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which audit records to read; every field left None matches any record."""

    object_type: str | None = None
    object_id: str | None = None
    action: str | None = None
    actor: str | None = None


def read_events(
    *,
    session: Session,
    chosen: EventFilter,
    newest_first: bool,
    after_seq: int | None,
    limit: int,
) -> list[AuditEvent]:
    """Up to `limit` records in chain order (or against it), past `after_seq` in that
    direction: a keyset read on the unique `seq`, so a page costs the same at any depth."""
    query = select(AuditEvent).limit(limit)
    query = query.order_by(AuditEvent.seq.desc() if newest_first else AuditEvent.seq)
    if after_seq is not None:
        query = query.where(
            AuditEvent.seq < after_seq if newest_first else AuditEvent.seq > after_seq
        )
    for column, value in (
        (AuditEvent.object_type, chosen.object_type),
        (AuditEvent.object_id, chosen.object_id),
        (AuditEvent.action, chosen.action),
        (AuditEvent.actor, chosen.actor),
    ):
        if value is not None:
            query = query.where(column == value)
    return list(session.scalars(query))
