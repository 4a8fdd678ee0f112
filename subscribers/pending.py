"""Requests waiting for a worker, held in the database so that the broker never carries
personal data.

A resident's sign-up, a reminder or a notice (a code, a link) needs an address or a
secret; the task that does the work is handed only the row's id (`Queued`). The worker
takes the row in the transaction that does the work (`take`, a delete), so that a
message the broker delivers twice (tasks are acknowledged late) finds nothing and does
nothing; a notice is read (`held`) and forgotten once it is sent, so that a retry finds
it. Erasing a resident forgets every request about their contact points and addresses
(`forget_contacts`), and a request nobody took (its message lost, its retries spent) is
dropped after `MAX_AGE` (`forget_stale`): the code it carries has expired by then.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from subscribers.models import PendingKind, PendingRequest

# Delivery ids count up from 1; request ids are drawn from [10**15, 2**53): a notice's id
# is its SMSAPI `idx`, never an alert SMS's, and exact in JSON.
REQUEST_ID_FLOOR = 10**15
REQUEST_ID_CEILING = 2**53

# A request is taken within seconds, and a notice's retries end within minutes: one still
# here after an hour was lost (its message, or its retries spent), and a code it carries
# has expired (verification_code_ttl_seconds: 15 minutes by default).
MAX_AGE = timedelta(hours=1)

# The task that does each kind of work, by name (the API does not import the tasks).
TASKS: dict[PendingKind, str] = {
    PendingKind.SIGN_UP: "tasks.jobs.sign_up",
    PendingKind.REMINDER: "tasks.jobs.send_reminder",
    PendingKind.NOTICE: "tasks.jobs.send_notice",
}

# The kinds that name addresses (in payload["contacts"]) rather than a contact point.
_ABOUT_ADDRESSES = (PendingKind.SIGN_UP.value, PendingKind.REMINDER.value)


def new_request_id() -> int:
    return REQUEST_ID_FLOOR + secrets.randbelow(REQUEST_ID_CEILING - REQUEST_ID_FLOOR)


@dataclass(frozen=True, slots=True)
class Queued:
    """What a task message carries: the kind of work and the id of its row, nothing else."""

    kind: PendingKind
    id: int

    @property
    def task(self) -> str:
        return TASKS[self.kind]


def hold(
    *,
    session: Session,
    kind: PendingKind,
    payload: Mapping[str, Any],
    contact_point_id: int | None = None,
) -> Queued:
    """Write a request for a worker; hand its `Queued` to the broker after the commit."""
    row = PendingRequest(
        id=new_request_id(),
        kind=kind.value,
        contact_point_id=contact_point_id,
        payload=dict(payload),
    )
    session.add(row)
    session.flush()
    return Queued(kind, row.id)


def take(*, session: Session, queued: Queued) -> dict[str, Any] | None:
    """Delete the request and return its payload; None if it is gone (done already, or
    erased). Rolled back with the work if the work fails, so a retry finds it again."""
    payload = session.execute(
        delete(PendingRequest)
        .where(PendingRequest.id == queued.id, PendingRequest.kind == queued.kind.value)
        .returning(PendingRequest.payload)
        .execution_options(synchronize_session=False)
    ).scalar()
    return dict(payload) if payload is not None else None


def held(*, session: Session, queued: Queued) -> PendingRequest | None:
    """The request, left in place (a notice stays until it is sent)."""
    row = session.get(PendingRequest, queued.id)
    return row if row is not None and row.kind == queued.kind.value else None


def forget(*, session: Session, ids: Iterable[int]) -> None:
    wanted = list(ids)
    if wanted:
        session.execute(delete(PendingRequest).where(PendingRequest.id.in_(wanted)))


def forget_contacts(
    *,
    session: Session,
    contact_point_ids: Collection[int],
    contacts: Collection[tuple[str, str]],
) -> int:
    """Forget every request about these contact points or these (channel, address)
    pairs; returns how many. Requests live for seconds, so the few about addresses are
    read and matched here rather than indexed by address."""
    doomed: list[int] = []
    if contact_point_ids:
        doomed += session.scalars(
            select(PendingRequest.id).where(
                PendingRequest.contact_point_id.in_(list(contact_point_ids))
            )
        )
    wanted = {(str(channel), str(address)) for channel, address in contacts}
    if wanted:
        rows = session.execute(
            select(PendingRequest.id, PendingRequest.payload).where(
                PendingRequest.kind.in_(_ABOUT_ADDRESSES)
            )
        )
        doomed += [
            row.id
            for row in rows
            if wanted & {(str(c), str(a)) for c, a in row.payload.get("contacts", [])}
        ]
    forget(session=session, ids=doomed)
    return len(doomed)


def forget_stale(*, session: Session, now: datetime) -> int:
    """Drop requests older than `MAX_AGE`: their messages were lost or gave up."""
    result = session.execute(
        delete(PendingRequest).where(PendingRequest.created_at < now - MAX_AGE)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
