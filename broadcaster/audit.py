"""The audit trail: append-only, hash-chained, verifiable.

Each record's hash covers its own fields and the previous record's hash, so editing,
deleting or reordering any record breaks the chain from that record on; the tip is kept
in `audit_head`, so cutting records off the end shows too. The database refuses UPDATE,
DELETE and TRUNCATE on the table (triggers in the migration): the verifier is for what
someone with the owner's rights did anyway.

Appending takes the head row's lock (an UPDATE) for the rest of the caller's transaction:
appenders are serialised and the chain never forks. The record commits with the action
it describes, or not at all.

Payloads never carry personal data (people appear by id), so erasing a resident never
touches the chain.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Table, insert, select, update
from sqlalchemy.orm import Session

from broadcaster.db import utcnow
from broadcaster.models import AuditEvent, AuditHead

GENESIS_HASH = "0" * 64
HEAD_ID = 1
# Keys that would smuggle personal data into the chain; refused, whatever their value.
PERSONAL_KEYS = frozenset({"address", "phone", "email", "token", "code", "name", "password"})

_events = cast(Table, AuditEvent.__table__)
_head = cast(Table, AuditHead.__table__)


def canonical_json(payload: Mapping[str, Any]) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def chain_hash(
    *,
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
    return hashlib.sha256(material.encode()).hexdigest()


def record(
    *,
    session: Session | Connection,
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
    personal = PERSONAL_KEYS.intersection(payload)
    if personal:
        raise ValueError(f"audit payload must not carry personal data: {sorted(personal)}")
    seq, prev_hash = session.execute(
        update(_head)
        .where(_head.c.id == HEAD_ID)
        .values(seq=_head.c.seq + 1)
        .returning(_head.c.seq, _head.c.hash)
    ).one()
    occurred_at = utcnow()
    body = canonical_json(payload)
    digest = chain_hash(
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
    """Walk the whole chain in order (streamed) and name the first broken record."""
    result = session.execute(
        select(AuditEvent).order_by(AuditEvent.seq).execution_options(yield_per=batch_size)
    )
    try:
        return _walk(session, result.scalars())
    finally:
        result.close()  # a verdict found early leaves the server-side cursor open


def _walk(session: Session, events: Iterable[AuditEvent]) -> Verification:
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
            prev_hash=event.prev_hash,
            seq=event.seq,
            occurred_at=event.occurred_at,
            actor=event.actor,
            action=event.action,
            object_type=event.object_type,
            object_id=event.object_id,
            payload=event.payload,
        )
        if recomputed != event.hash:
            return Verification(
                False,
                expected_seq - 1,
                event.seq,
                event.id,
                "its content was changed after it was written",
            )
        prev_hash = event.hash
        expected_seq += 1
    checked = expected_seq - 1
    head_seq, head_hash = session.execute(
        select(_head.c.seq, _head.c.hash).where(_head.c.id == HEAD_ID)
    ).one()
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
