"""Checking the trail: verify the chain and its sealed head, checkpoints kept outside the
database, and the reseal an administrator may do after a checked repair."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from broadcaster.audit.models import AuditEvent
from broadcaster.audit.trail import (
    GENESIS_HASH,
    HEAD_ID,
    HEAD_TABLE,
    HEX,
    canonical_json,
    chain_hash,
    is_sealed,
    key_of,
    record,
    same_digest,
    seal_of,
)
from broadcaster.db.engine import utcnow
from broadcaster.errors import Conflict
from broadcaster.wording import refusal, words


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
            select(HEAD_TABLE.c.seq, HEAD_TABLE.c.hash, HEAD_TABLE.c.seal).where(
                HEAD_TABLE.c.id == HEAD_ID
            )
        ).one_or_none()
        if row is None or not isinstance(row.hash, str):
            return None
        return int(row.seq), row.hash, row.seal
    except (ValueError, TypeError):
        return None


def take_checkpoint(*, session: Session, verified: Verification | None = None) -> Checkpoint | None:
    """A checkpoint of the chain's tip, once the whole chain verifies (`verified`, if the
    caller has just verified it in this session, else verified here); None when it does
    not: a checkpoint of a cut chain would vouch for the cut."""
    key = key_of(session)
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
        if not (isinstance(value, str) and len(value) == 64 and HEX.fullmatch(value)):
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
    key = key_of(session)
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
    if check_seal and not is_sealed(key, head_seq, head_hash, head_seal):
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
        if not same_digest(event.hash, recomputed):
            return Verification.broken(expected_seq - 1, event.seq, event.id, "audit.changed")
        seen = saw.get(event.seq)
        if seen is not None and not same_digest(event.hash, seen.hash):
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
    if not same_digest(head_hash, prev_hash):
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
    session.execute(
        update(HEAD_TABLE).where(HEAD_TABLE.c.id == HEAD_ID).values(seq=HEAD_TABLE.c.seq)
    )
    if verify_chain(session=session).intact:
        raise Conflict("the audit trail's tip is sealed: there is nothing to seal again")
    verdict = verify_chain(session=session, checkpoints=checkpoints, check_seal=False)
    if not verdict.intact:
        raise Conflict(
            f"the audit trail is broken elsewhere, not only its seal: {verdict.describe()}"
        )
    key = key_of(session)
    head = _head_of(session)
    assert head is not None  # the chain verified, so its tip is there
    seq, tip_hash, _seal = head
    session.execute(
        update(HEAD_TABLE)
        .where(HEAD_TABLE.c.id == HEAD_ID)
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
