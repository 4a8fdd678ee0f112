"""The sweeper: what keeps the pipeline moving when nothing else would, run every few
seconds by beat. One `sweep` runs five steps, in this order:

1. `expire_alerts`: live alerts past their expiry expire; what has not left is
   suppressed, and their batches are done.
2. `alerts_to_plan`: approved alerts that are due (now, or at their scheduled time) go to
   planning, and so do alerts whose planner went silent in the middle of their plan (it
   died, or stalled past its lease): a new planner goes on from where it stopped.
3. `release_lapsed_leases`: rows held by a worker that died (claimed longer ago than the
   lease) wait again, or are withdrawn if their alert has ended.
4. `batches_to_publish`: batches due and not published lately are published again (the
   outbox: a crash between a commit and its publish, a retry time reached, a broker that
   lost a message), except where their channel's queue has not drained.
5. `finish_alerts`: dispatching alerts that are planned and have no batch left are done.

Expiry comes first, so that an alert past its time is neither planned nor published
again; the release comes before publishing, so that a released batch is published in the
same sweep; finishing comes last, after every step that may close or reopen a batch.
Everything it finds, it finds through small indexed tables (alerts, batches), never by
scanning deliveries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.orm import Session

from broadcaster.alerts.lifecycle import Move, expire_due_alerts, transition
from broadcaster.alerts.models import URGENT, Alert, AlertStatus
from broadcaster.db.engine import utcnow
from broadcaster.dispatch.models import BatchState, DispatchBatch
from broadcaster.dispatch.outbox import BatchRef, Outbox
from broadcaster.dispatch.planning import approved_and_due
from broadcaster.dispatch.states import DeliveryStateMachine, ended_reason
from broadcaster.errors import Conflict


@dataclass
class Sweep:
    """What one sweep found: alerts to plan and batches to publish (the caller publishes
    them after the commit), rows released, alerts expired and finished."""

    plans: list[int] = field(default_factory=list)
    batches: list[BatchRef] = field(default_factory=list)
    released: int = 0
    expired: list[int] = field(default_factory=list)
    finished: list[int] = field(default_factory=list)


def sweep(
    *,
    session: Session,
    lease_seconds: float,
    plan_lease_seconds: float = 30.0,
    requeue_seconds: float = 30.0,
    now: datetime | None = None,
    limit: int = 5000,
    busy_channels: frozenset[str] = frozenset(),
) -> Sweep:
    """Run the five steps in the module's order, in the caller's transaction."""
    moment = now or utcnow()
    found = Sweep()
    found.expired = expire_alerts(session=session, now=moment)
    found.plans = alerts_to_plan(
        session=session, now=moment, silent_since=moment - timedelta(seconds=plan_lease_seconds)
    )
    found.released = release_lapsed_leases(
        session=session, claimed_before=moment - timedelta(seconds=lease_seconds), now=moment
    )
    found.batches = batches_to_publish(
        session=session,
        now=moment,
        requeue_seconds=requeue_seconds,
        busy_channels=busy_channels,
        limit=limit,
    )
    found.finished = finish_alerts(session=session, now=moment)
    return found


def expire_alerts(*, session: Session, now: datetime) -> list[int]:
    """Expire every live alert past its expiry (what has not left is suppressed) and close
    their batches; the ids expired."""
    expired = expire_due_alerts(session=session, now=now)
    Outbox(session).close(alert_ids=expired)
    return expired


def alerts_to_plan(*, session: Session, now: datetime, silent_since: datetime) -> list[int]:
    """Approved alerts whose time has come (no send time, or one reached), and alerts
    still being planned whose planner has written nothing since `silent_since`; the most
    urgent first, then in id order."""
    stalled = and_(
        Alert.status == AlertStatus.DISPATCHING,
        Alert.planned_at.is_(None),
        # No planner's lease at all: one stepped aside for an urgent alert.
        or_(Alert.planner_seen_at < silent_since, Alert.planner_seen_at.is_(None)),
    )
    return list(
        session.scalars(
            select(Alert.id)
            .where(or_(approved_and_due(now), stalled))
            .order_by(Alert.severity.in_(sorted(URGENT)).desc(), Alert.id)
        )
    )


def release_lapsed_leases(*, session: Session, claimed_before: datetime, now: datetime) -> int:
    """Rows held since before `claimed_before` by a worker that is gone wait again (or,
    when their alert has ended meanwhile, are withdrawn); the batch's lease then follows
    its oldest row still held. How many rows were released or withdrawn."""
    outbox = Outbox(session)
    machine = DeliveryStateMachine(session)
    released = 0
    for lapsed in outbox.lapsed_leases(claimed_before=claimed_before):
        if lapsed.alert_status is AlertStatus.DISPATCHING:
            moved = machine.release_stale(
                alert_id=lapsed.alert_id, batch_no=lapsed.batch_no, claimed_before=claimed_before
            )
            requeue = bool(moved)
        else:
            moved = machine.withdraw(
                reason=ended_reason(lapsed.alert_status),
                alert_id=lapsed.alert_id,
                batch_no=lapsed.batch_no,
                claimed_before=claimed_before,
            )
            requeue = False
        outbox.lease_lapsed(
            alert_id=lapsed.alert_id, batch_no=lapsed.batch_no, released=requeue, now=now
        )
        released += moved
    return released


def batches_to_publish(
    *,
    session: Session,
    now: datetime,
    requeue_seconds: float,
    busy_channels: frozenset[str],
    limit: int,
) -> list[BatchRef]:
    """Batches due and not published lately, noted as being published.

    A batch published a while ago is published again only when its channel's queue has
    drained (`busy_channels` names those that have not): in a long queue it is waiting,
    not lost, and publishing every waiting batch again would only lengthen the queue.
    """
    outbox = Outbox(session)
    due = outbox.due(
        now=now, requeue_seconds=requeue_seconds, busy_channels=busy_channels, limit=limit
    )
    outbox.mark_enqueued(refs=due, now=now)
    return due


def finish_alerts(*, session: Session, now: datetime) -> list[int]:
    """Dispatching alerts that are planned and have no batch still queued are done; their
    ids."""
    finished = session.scalars(
        select(Alert).where(
            Alert.status == AlertStatus.DISPATCHING,
            Alert.planned_at.is_not(None),
            ~exists().where(
                DispatchBatch.alert_id == Alert.id, DispatchBatch.state == BatchState.QUEUED
            ),
        )
    ).all()
    done: list[int] = []
    for alert in finished:
        try:
            transition(
                session=session,
                alert=alert,
                move=Move.FINISH,
                actor="system:sweeper",
                values={"finished_at": now},
            )
        except Conflict:
            continue
        done.append(alert.id)
    return done
