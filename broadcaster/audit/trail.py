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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, func, insert, select, update
from sqlalchemy.orm import Session

from broadcaster.audit.models import AuditEvent, AuditHead
from broadcaster.db.engine import AUDIT_KEY, utcnow
from broadcaster.errors import Conflict
from broadcaster.wording import refusal, words

GENESIS_HASH = "0" * 64
HEAD_ID = 1
# Keys that would smuggle personal data into the chain; refused at any depth.
PERSONAL_KEYS = frozenset(
    {"address", "phone", "email", "token", "code", "name", "password", "number", "text"}
)

_HEX = re.compile(r"[0-9a-f]{64}")
# The seal of a tip that was moved without the key: no HMAC is ever this, so the tip
# stays unsealed whatever is appended after it, until someone holding the key looks.
UNSEALED = "-" * 64
_log = logging.getLogger(__name__)

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


def seal_of(*, key: bytes, seq: int, tip_hash: str) -> str:
    """The tip's seal: whoever lacks the key cannot point the tip anywhere else."""
    material = canonical_json({"tip": seq, "hash": tip_hash})
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
    seq, prev_hash, prev_seal = session.execute(
        update(_head)
        .where(_head.c.id == HEAD_ID)
        .values(seq=_head.c.seq + 1)
        .returning(_head.c.seq, _head.c.hash, _head.c.seal)
    ).one()
    # A tip moved without the key stays unsealed: appending must not launder it.
    sealed = _sealed(key, seq - 1, prev_hash, prev_seal)
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
        update(_head)
        .where(_head.c.id == HEAD_ID)
        .values(
            hash=digest, seal=seal_of(key=key, seq=seq, tip_hash=digest) if sealed else UNSEALED
        )
    )
    return int(seq)


@dataclass(frozen=True, slots=True)
class Verification:
    """The verifier's verdict: intact, or the first record where the chain breaks."""

    intact: bool
    checked: int
    broken_seq: int | None = None
    broken_id: int | None = None
    problem: str | None = None
    # The problem in every language of the catalogue (broadcaster.wording).
    problems: Mapping[str, str] = field(default_factory=dict)
    # An intact chain's newest hash (the tip's, which the seal covers).
    tip_hash: str | None = None

    @classmethod
    def broken(
        cls, checked: int, at_seq: int, event_id: int | None, key: str, **fields: object
    ) -> Verification:
        """A broken chain, the problem worded from the catalogue entry `key`."""
        said = words(key, **fields)
        return cls(False, checked, at_seq, event_id, said["en"], said)

    def problem_in(self, language: str) -> str | None:
        return self.problems.get(language, self.problem)

    def describe(self) -> str:
        if self.intact:
            return f"intact: {self.checked} records"
        where = f"record seq {self.broken_seq}" + (
            f" (id {self.broken_id})" if self.broken_id is not None else ""
        )
        return f"broken at {where}: {self.problem}"


CHECKPOINT_MARK = "audit_checkpoint"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The chain's tip at a moment, sealed: what an auditor keeps outside the database.

    Its line (`as_line`) is one JSON object; `parse_checkpoints` finds such lines in any
    text, a log included."""

    seq: int
    hash: str
    taken_at: datetime
    seal: str

    @staticmethod
    def material(seq: int, tip_hash: str, taken_at: datetime) -> bytes:
        return canonical_json(
            {"checkpoint": seq, "hash": tip_hash, "at": taken_at.isoformat()}
        ).encode()

    def as_line(self) -> str:
        return json.dumps(
            {
                CHECKPOINT_MARK: 1,
                "seq": self.seq,
                "hash": self.hash,
                "taken_at": self.taken_at.isoformat(),
                "seal": self.seal,
            },
            separators=(",", ":"),
        )

    def sealed_by(self, key: bytes) -> bool:
        material = self.material(self.seq, self.hash, self.taken_at)
        expected = hmac.new(key, material, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, self.seal)


def _head_of(session: Session) -> tuple[int, str, str | None] | None:
    """The tip as stored, or None when its row is gone or does not read as one."""
    try:
        row = session.execute(
            select(_head.c.seq, _head.c.hash, _head.c.seal).where(_head.c.id == HEAD_ID)
        ).one_or_none()
        if row is None or not isinstance(row.hash, str):
            return None
        return int(row.seq), row.hash, row.seal
    except (ValueError, TypeError):
        return None


def _same(found: object, expected: str) -> bool:
    """Constant-time equality of a stored value (whatever the database holds) and ours."""
    return isinstance(found, str) and hmac.compare_digest(
        found.encode("utf-8", "surrogatepass"), expected.encode()
    )


def _sealed(key: bytes, seq: int, tip_hash: str, seal: object) -> bool:
    return _same(seal, seal_of(key=key, seq=seq, tip_hash=tip_hash))


def take_checkpoint(*, session: Session, verified: Verification | None = None) -> Checkpoint | None:
    """A checkpoint of the chain's tip, once the whole chain verifies (`verified`, if the
    caller has just verified it in this session, else verified here); None when it does
    not: a checkpoint of a cut chain would vouch for the cut."""
    key = _key_of(session)
    verdict = verified if verified is not None else verify_chain(session=session)
    if not verdict.intact or verdict.tip_hash is None:
        return None
    seq, tip_hash = verdict.checked, verdict.tip_hash
    taken_at = utcnow()
    mark = hmac.new(key, Checkpoint.material(seq, tip_hash, taken_at), hashlib.sha256)
    return Checkpoint(seq=seq, hash=tip_hash, taken_at=taken_at, seal=mark.hexdigest())


def parse_checkpoints(text: str, *, field: str = "checkpoint") -> list[Checkpoint]:
    """Every checkpoint line in `text` (a file an auditor kept, or a worker's log: other
    lines are skipped); a line that carries the mark but is not a whole checkpoint is
    refused, naming the line."""
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        start = line.find(f'{{"{CHECKPOINT_MARK}":')
        if start < 0:
            continue
        try:
            found.append(checkpoint_of(json.loads(line[start:])))
        except (ValueError, TypeError, KeyError, RecursionError):
            raise refusal(field, "audit.malformed_checkpoint", line=number) from None
    if not found:
        raise refusal(field, "audit.no_checkpoint")
    return found


def checkpoint_of(data: Any) -> Checkpoint:
    """A checkpoint from its JSON object; ValueError, KeyError or TypeError if it is not one."""
    if not isinstance(data, Mapping):
        raise TypeError("not an object")
    seq, tip_hash, seal = data["seq"], data["hash"], data["seal"]
    if not (isinstance(seq, int) and not isinstance(seq, bool) and 0 <= seq < 2**63):
        raise ValueError("seq")
    for value in (tip_hash, seal):
        if not (isinstance(value, str) and len(value) == 64 and _HEX.fullmatch(value)):
            raise ValueError("hash")
    taken_at = datetime.fromisoformat(data["taken_at"])
    if taken_at.tzinfo is None:
        raise ValueError("taken_at")
    return Checkpoint(seq=seq, hash=tip_hash, taken_at=taken_at, seal=seal)


def verify_chain(
    *,
    session: Session,
    batch_size: int = 5000,
    checkpoints: Iterable[Checkpoint] = (),
    field: str = "checkpoints",
    check_seal: bool = True,
) -> Verification:
    """Walk the chain in order (streamed) up to the tip read first, and name the first
    broken record: a record changed, missing or moved, a tip whose seal does not match,
    or a record a checkpoint saw that is gone or changed. Records appended while the walk
    runs lie past that tip and wait for the next verification, so a live system never
    raises a false alarm.

    A checkpoint not sealed with this trail's key is refused (InvalidInput naming
    `<field>.<its index>`) before the walk: it is another trail's, or was edited."""
    key = _key_of(session)
    given = list(checkpoints)
    for index, checkpoint in enumerate(given):
        if not checkpoint.sealed_by(key):
            raise refusal(f"{field}.{index}", "audit.foreign_checkpoint", seq=checkpoint.seq)
    seen = sorted(given, key=lambda checkpoint: checkpoint.seq)
    # The newest record before the tip: a record commits with the tip it moves, and the
    # tip only grows, so no record read first can lie past the tip read after it.
    newest = session.scalar(select(func.max(AuditEvent.seq)))
    head = _head_of(session)
    if head is None:
        return Verification.broken(0, 1, None, "audit.no_tip")
    head_seq, head_hash, head_seal = head
    result = session.execute(
        select(AuditEvent)
        .where(AuditEvent.seq <= head_seq)
        .order_by(AuditEvent.seq)
        .execution_options(yield_per=batch_size)
    )
    walked = [0]
    try:
        verdict = _walk(key, result.scalars(), head_seq, head_hash, seen, walked)
    except (ValueError, TypeError, LookupError, ArithmeticError):
        # A value written past the column's type (SQLite keeps what it is given).
        at = walked[0] + 1
        verdict = Verification.broken(walked[0], at, None, "audit.unreadable", seq=at)
    finally:
        result.close()  # a verdict found early leaves the server-side cursor open
    if not verdict.intact:
        return verdict
    if check_seal and not _sealed(key, head_seq, head_hash, head_seal):
        return Verification.broken(
            verdict.checked, head_seq + 1, None, "audit.tip_not_sealed", seq=head_seq
        )
    if newest is not None and newest > head_seq:
        return Verification.broken(
            verdict.checked, head_seq + 1, None, "audit.beyond_tip", seq=newest, tip=head_seq
        )
    beyond = [checkpoint for checkpoint in seen if checkpoint.seq > head_seq]
    if beyond:
        newest = beyond[-1]
        return Verification.broken(
            verdict.checked,
            head_seq + 1,
            None,
            "audit.cut_after_checkpoint",
            taken_at=newest.taken_at.isoformat(),
            seen=newest.seq,
            seq=head_seq,
        )
    return verdict


def _walk(
    key: bytes,
    events: Iterable[AuditEvent],
    head_seq: int,
    head_hash: str,
    checkpoints: list[Checkpoint],
    walked: list[int],
) -> Verification:
    """The walk's verdict; `walked[0]` counts the records found sound so far."""
    expected_seq = 1
    prev_hash = GENESIS_HASH
    # What each checkpoint saw at its seq, the empty chain's included.
    saw = {checkpoint.seq: checkpoint for checkpoint in checkpoints}
    if 0 in saw and saw[0].hash != GENESIS_HASH:
        return Verification.broken(
            0, 1, None, "audit.checkpoint_differs", taken_at=saw[0].taken_at.isoformat()
        )
    for event in events:
        if event.seq != expected_seq:
            if event.seq > expected_seq:
                return Verification.broken(
                    expected_seq - 1, expected_seq, event.id, "audit.missing", seq=expected_seq
                )
            return Verification.broken(
                expected_seq - 1, expected_seq, event.id, "audit.out_of_order", seq=event.seq
            )
        if event.prev_hash != prev_hash:
            return Verification.broken(expected_seq - 1, event.seq, event.id, "audit.moved")
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
        if not _same(event.hash, recomputed):
            return Verification.broken(expected_seq - 1, event.seq, event.id, "audit.changed")
        seen = saw.get(event.seq)
        if seen is not None and not _same(event.hash, seen.hash):
            return Verification.broken(
                expected_seq - 1,
                event.seq,
                event.id,
                "audit.checkpoint_differs",
                taken_at=seen.taken_at.isoformat(),
            )
        prev_hash = event.hash
        walked[0] = expected_seq
        expected_seq += 1
    checked = expected_seq - 1
    if head_seq != checked:
        return Verification.broken(
            checked, checked + 1, None, "audit.cut", seq=checked, tip=head_seq
        )
    if not _same(head_hash, prev_hash):
        return Verification.broken(checked, checked, None, "audit.tip_differs", seq=checked)
    return Verification(True, checked, tip_hash=prev_hash)


def reseal(*, session: Session, actor: str, checkpoints: Sequence[Checkpoint]) -> int:
    """Seal a tip found unsealed again, once a person holding the key has looked: the
    chain must verify in every other way, against at least one checkpoint kept outside
    (the newest one held), and the reseal is itself recorded. Returns the record's seq.

    Conflict when the tip is sealed already, or when the chain is broken elsewhere (that
    is not a seal's to fix); InvalidInput when no checkpoint is given."""
    if not checkpoints:
        raise refusal("checkpoint", "audit.reseal_needs_checkpoint")
    # The head's lock first, as an append takes it: no record lands between the check
    # and the seal.
    session.execute(update(_head).where(_head.c.id == HEAD_ID).values(seq=_head.c.seq))
    if verify_chain(session=session).intact:
        raise Conflict("the audit trail's tip is sealed: there is nothing to seal again")
    verdict = verify_chain(session=session, checkpoints=checkpoints, check_seal=False)
    if not verdict.intact:
        raise Conflict(
            f"the audit trail is broken elsewhere, not only its seal: {verdict.describe()}"
        )
    key = _key_of(session)
    head = _head_of(session)
    assert head is not None  # the chain verified, so its tip is there
    seq, tip_hash, _seal = head
    session.execute(
        update(_head)
        .where(_head.c.id == HEAD_ID)
        .values(seal=seal_of(key=key, seq=seq, tip_hash=tip_hash))
    )
    newest = max(checkpoints, key=lambda checkpoint: checkpoint.seq)
    return record(
        session=session,
        actor=actor,
        action="audit.resealed",
        object_type="audit",
        object_id=seq,
        payload={"tip": seq, "checkpoints": len(checkpoints), "newest_checkpoint": newest.seq},
    )


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
