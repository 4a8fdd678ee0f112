"""The sweeper: what keeps the pipeline moving when nothing else would, run every few
seconds by beat.

- approved alerts that are due (now, or at their scheduled time) go to planning;
- live alerts past their expiry expire, and what has not left is suppressed;
- rows held by a worker that died (claimed longer ago than the lease) wait again, or
  are withdrawn if their alert has ended;
- batches due and not published lately are published (the outbox: a crash between a
  commit and its publish, a retry time reached, a broker that lost a message); a batch
  published a while ago is published again only when its channel's queue has drained
  (`busy_channels` names those that have not): in a long queue it is waiting, not lost,
  and publishing every waiting batch again would only lengthen the queue;
- dispatching alerts with no batch left are done.
Everything it finds, it finds through small indexed tables (alerts, batches), never by
scanning deliveries.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, exists, func, or_, select, update
from sqlalchemy.orm import Session

from broadcaster.alerts.models import Alert, AlertStatus
from broadcaster.alerts.services import Move, expire_due_alerts, transition
from broadcaster.db.engine import utcnow
from broadcaster.dispatch import progress
from broadcaster.dispatch.models import BatchState, Delivery, DeliveryStatus, DispatchBatch
from broadcaster.dispatch.planning import URGENT, BatchRef
from broadcaster.dispatch.states import DeliveryStateMachine, ended_reason
from broadcaster.errors import Conflict


@dataclass
class Sweep:
    plans: list[int] = field(default_factory=list)
    batches: list[BatchRef] = field(default_factory=list)
    released: int = 0
    expired: list[int] = field(default_factory=list)
    finished: list[int] = field(default_factory=list)


def sweep(
    *,
    session: Session,
    lease_seconds: float,
    requeue_seconds: float = 30.0,
    now: datetime | None = None,
    limit: int = 5000,
    busy_channels: frozenset[str] = frozenset(),
) -> Sweep:
    moment = now or utcnow()
    found = Sweep()
    found.expired = expire_due_alerts(session=session, now=moment)
    if found.expired:
        session.execute(
            update(DispatchBatch)
            .where(DispatchBatch.alert_id.in_(found.expired))
            .values(state=BatchState.DONE)
        )
    found.plans = list(
        session.scalars(
            select(Alert.id)
            .where(
                Alert.status == AlertStatus.APPROVED,
                or_(Alert.send_at.is_(None), Alert.send_at <= moment),
            )
            .order_by(Alert.id)
        )
    )
    found.released = _release_stale(session, moment - timedelta(seconds=lease_seconds), moment)
    dispatching = select(Alert.id).where(Alert.status == AlertStatus.DISPATCHING)
    due = session.execute(
        select(
            DispatchBatch.alert_id, DispatchBatch.batch_no, DispatchBatch.channel, Alert.severity
        )
        .join(Alert, Alert.id == DispatchBatch.alert_id)
        .where(
            DispatchBatch.state == BatchState.QUEUED,
            DispatchBatch.next_run_at <= moment,
            or_(
                DispatchBatch.enqueued_at.is_(None),
                and_(
                    DispatchBatch.enqueued_at < moment - timedelta(seconds=requeue_seconds),
                    DispatchBatch.channel.not_in(sorted(busy_channels)),
                ),
            ),
            DispatchBatch.alert_id.in_(dispatching),
        )
        .order_by(DispatchBatch.next_run_at)
        .limit(limit)
    ).all()
    found.batches = [
        BatchRef(alert_id, batch_no, channel, severity in URGENT)
        for alert_id, batch_no, channel, severity in due
    ]
    mark_enqueued(session=session, refs=found.batches, now=moment)
    finished = session.scalars(
        select(Alert).where(
            Alert.status == AlertStatus.DISPATCHING,
            ~exists().where(
                DispatchBatch.alert_id == Alert.id, DispatchBatch.state == BatchState.QUEUED
            ),
        )
    ).all()
    for alert in finished:
        try:
            transition(
                session=session,
                alert=alert,
                move=Move.FINISH,
                actor="system:sweeper",
                values={"finished_at": moment},
            )
        except Conflict:
            continue
        found.finished.append(alert.id)
    return found


def _release_stale(session: Session, claimed_before: datetime, now: datetime) -> int:
    """Rows held longer than the lease by a worker that is gone wait again (or, when their
    alert has ended meanwhile, are withdrawn); the batch's lease then follows its oldest
    row still held. Found through the batches' own claim time, whatever their state: an
    expired alert's batches are done, but a dead worker's rows in them must still end."""
    stale = session.execute(
        select(DispatchBatch.alert_id, DispatchBatch.batch_no, DispatchBatch.channel, Alert.status)
        .join(Alert, Alert.id == DispatchBatch.alert_id)
        .where(
            DispatchBatch.claimed_at.is_not(None),
            DispatchBatch.claimed_at < claimed_before,
        )
    ).all()
    machine = DeliveryStateMachine(session)
    released = 0
    for alert_id, batch_no, channel, status in stale:
        target = DeliveryStatus.PENDING
        if status is AlertStatus.DISPATCHING:
            moved = machine.release_stale(
                alert_id=alert_id, batch_no=batch_no, claimed_before=claimed_before
            )
        else:
            target = DeliveryStatus.SUPPRESSED
            moved = machine.withdraw(
                reason=ended_reason(status),
                alert_id=alert_id,
                batch_no=batch_no,
                claimed_before=claimed_before,
            )
        held_since = session.scalar(
            select(func.min(Delivery.claimed_at)).where(
                Delivery.alert_id == alert_id,
                Delivery.batch_no == batch_no,
                Delivery.status == DeliveryStatus.SENDING,
            )
        )
        values: dict[str, object] = {"claimed_at": held_since}
        if moved and target is DeliveryStatus.PENDING:
            values |= {"enqueued_at": None, "next_run_at": now}
        session.execute(
            update(DispatchBatch)
            .where(DispatchBatch.alert_id == alert_id, DispatchBatch.batch_no == batch_no)
            .values(**values)
        )
        if moved:
            progress.add(
                session,
                alert_id,
                Counter(
                    {
                        (channel, DeliveryStatus.SENDING.value): -moved,
                        (channel, target.value): moved,
                    }
                ),
            )
            released += moved
    return released


def mark_enqueued(*, session: Session, refs: list[BatchRef], now: datetime | None = None) -> None:
    """Note that these batches are being published, so the sweeper leaves them a while."""
    moment = now or utcnow()
    by_alert: dict[int, list[int]] = {}
    for ref in refs:
        by_alert.setdefault(ref.alert_id, []).append(ref.batch_no)
    for alert_id, numbers in by_alert.items():
        for start in range(0, len(numbers), 1000):
            session.execute(
                update(DispatchBatch)
                .where(
                    DispatchBatch.alert_id == alert_id,
                    DispatchBatch.batch_no.in_(numbers[start : start + 1000]),
                )
                .values(enqueued_at=moment)
            )
