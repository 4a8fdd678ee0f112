"""The audit trail: append-only, hash-chained, verifiable.

Each record's hash is an HMAC, keyed outside the database (derived from the secret key),
over its own fields and the previous record's hash: editing, deleting or reordering any
record breaks the chain from that record on, and whoever can write the database but does
not hold the key cannot forge a chain that verifies. The tip is kept in `audit_head`, so
cutting records off the end shows too. The database refuses UPDATE, DELETE and TRUNCATE
on the table (triggers in the migration); the verifier is for what someone with the
owner's rights did anyway.

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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, insert, select, update
from sqlalchemy.orm import Session

from broadcaster.db import AUDIT_KEY, utcnow
from broadcaster.models import AuditEvent, AuditHead

GENESIS_HASH = "0" * 64
HEAD_ID = 1
# Keys that would smuggle personal data into the chain; refused at any depth.
PERSONAL_KEYS = frozenset(
    {"address", "phone", "email", "token", "code", "name", "password", "number", "text"}
)

_events = cast(Table, AuditEvent.__table__)
_head = cast(Table, AuditHead.__table__)


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


def _key_of(session: Session) -> bytes:
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
    key = _key_of(session)
    seq, prev_hash = session.execute(
        update(_head)
        .where(_head.c.id == HEAD_ID)
        .values(seq=_head.c.seq + 1)
        .returning(_head.c.seq, _head.c.hash)
    ).one()
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
    session.execute(update(_head).where(_head.c.id == HEAD_ID).values(hash=digest))
    return int(seq)


@dataclass(frozen=True, slots=True)
class Verification:
    """The verifier's verdict: intact, or the first record where the chain breaks."""

    intact: bool
    checked: int
    broken_seq: int | None = None
    broken_id: int | None = None
    problem: str | None = None

    def describe(self) -> str:
        if self.intact:
            return f"intact: {self.checked} records"
        where = f"record seq {self.broken_seq}" + (
            f" (id {self.broken_id})" if self.broken_id is not None else ""
        )
        return f"broken at {where}: {self.problem}"


def verify_chain(*, session: Session, batch_size: int = 5000) -> Verification:
    """Walk the chain in order (streamed) up to the tip read first, and name the first
    broken record. Records appended while the walk runs lie past that tip and wait for the
    next verification, so a live system never raises a false alarm."""
    key = _key_of(session)
    head_seq, head_hash = session.execute(
        select(_head.c.seq, _head.c.hash).where(_head.c.id == HEAD_ID)
    ).one()
    result = session.execute(
        select(AuditEvent)
        .where(AuditEvent.seq <= head_seq)
        .order_by(AuditEvent.seq)
        .execution_options(yield_per=batch_size)
    )
    try:
        return _walk(key, result.scalars(), head_seq, head_hash)
    finally:
        result.close()  # a verdict found early leaves the server-side cursor open


def _walk(key: bytes, events: Iterable[AuditEvent], head_seq: int, head_hash: str) -> Verification:
    expected_seq = 1
    prev_hash = GENESIS_HASH
    for event in events:
        if event.seq != expected_seq:
            problem = (
                f"record seq {expected_seq} is missing"
                if event.seq > expected_seq
                else f"seq {event.seq} appears out of order"
            )
            return Verification(False, expected_seq - 1, expected_seq, event.id, problem)
        if event.prev_hash != prev_hash:
            return Verification(
                False,
                expected_seq - 1,
                event.seq,
                event.id,
                "does not follow the previous record (moved, or a record before it was removed)",
            )
        recomputed = chain_hash(
            key=key,
            prev_hash=event.prev_hash,
            seq=event.seq,
            occurred_at=event.occurred_at,
            actor=event.actor,
            action=event.action,
            object_type=event.object_type,
            object_id=event.object_id,
            payload=event.payload,
        )
        if not hmac.compare_digest(recomputed, event.hash):
            return Verification(
                False,
                expected_seq - 1,
                event.seq,
                event.id,
                "its content or its hash was changed after it was written",
            )
        prev_hash = event.hash
        expected_seq += 1
    checked = expected_seq - 1
    if head_seq != checked or head_hash != prev_hash:
        return Verification(
            False,
            checked,
            checked + 1,
            None,
            f"the chain ends at seq {checked} but its tip says {head_seq}: "
            "records were removed from the end",
        )
    return Verification(True, checked)


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
