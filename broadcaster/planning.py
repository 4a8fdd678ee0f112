"""Planning an approved alert: freeze its audience into delivery rows and batches.

One transaction moves the alert to dispatching, streams the audience (never a list of it
in memory), writes one delivery per contact point (COPY on PostgreSQL, executemany on
SQLite) grouped into batches of one channel, writes the batch rows (the outbox), and sets
the progress counters. The caller publishes the batch tasks only after the commit; the
sweeper publishes whatever a crash left unpublished.

Quiet hours are settled here: an informational alert to a resident inside their quiet
window waits in a batch of its own until the window ends, or is suppressed if the alert
expires first. Severe and extreme alerts ignore quiet hours.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Table, insert
from sqlalchemy.orm import Session

from broadcaster import audit, progress
from broadcaster.alerts import Move, transition
from broadcaster.bulk import row_writer
from broadcaster.db import utcnow
from broadcaster.delivery import SuppressReason
from broadcaster.errors import Conflict
from broadcaster.models import (
    Alert,
    AlertStatus,
    BatchState,
    Delivery,
    DeliveryStatus,
    DispatchBatch,
    Severity,
)
from broadcaster.targeting import stream_audience

WARSAW = ZoneInfo("Europe/Warsaw")
URGENT = frozenset({Severity.EXTREME, Severity.SEVERE})
DELIVERY_COLUMNS = (
    "alert_id",
    "batch_no",
    "subscriber_id",
    "contact_point_id",
    "channel",
    "language",
    "status",
    "attempts",
    "reason",
    "created_at",
    "next_attempt_at",
    "finished_at",
)


def is_urgent(alert: Alert) -> bool:
    return alert.severity in URGENT


def quiet_until(start: time | None, end: time | None, now: datetime) -> datetime | None:
    """When the quiet window that `now` falls in ends (UTC), or None outside one."""
    if start is None or end is None:
        return None
    local = now.astimezone(WARSAW)
    clock = local.time()
    inside = start <= clock < end if start < end else (clock >= start or clock < end)
    if not inside:
        return None
    ends = datetime.combine(local.date(), end, tzinfo=WARSAW)
    if ends <= local:
        ends = datetime.combine(local.date() + timedelta(days=1), end, tzinfo=WARSAW)
    return ends.astimezone(now.tzinfo)


@dataclass(frozen=True, slots=True)
class BatchRef:
    alert_id: int
    batch_no: int
    channel: str
    urgent: bool


@dataclass
class Plan:
    alert_id: int
    urgent: bool
    due: list[BatchRef] = field(default_factory=list)
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    batches: int = 0


class _Batches:
    """Hands out batch numbers: one open batch per (channel, time it may leave)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.next_no = 1
        self.open: dict[tuple[str, datetime], tuple[int, int]] = {}
        self.rows: dict[int, dict[str, Any]] = {}

    def assign(self, channel: str, leaves_at: datetime) -> int:
        key = (channel, leaves_at)
        number, filled = self.open.get(key, (0, self.size))
        if filled >= self.size:
            number, filled = self.next_no, 0
            self.next_no += 1
            self.rows[number] = {
                "batch_no": number,
                "channel": channel,
                "size": 0,
                "next_run_at": leaves_at,
            }
        self.open[key] = (number, filled + 1)
        self.rows[number]["size"] += 1
        return number


def plan_alert(
    *, session: Session, alert_id: int, batch_size: int = 500, now: datetime | None = None
) -> Plan | None:
    """Freeze the audience of an approved, due alert; None if there is nothing to plan
    (not approved any more, already planned by someone else, or scheduled later)."""
    moment = now or utcnow()
    alert = session.get(Alert, alert_id)
    if alert is None or alert.status is not AlertStatus.APPROVED:
        return None
    if alert.send_at is not None and alert.send_at > moment:
        return None
    try:
        transition(
            session=session,
            alert=alert,
            move=Move.START_DISPATCH,
            actor="system:planner",
            values={"dispatched_at": moment},
        )
    except Conflict:
        return None
    urgent = is_urgent(alert)
    plan = Plan(alert_id=alert.id, urgent=urgent)
    batches = _Batches(batch_size)
    write = row_writer(session.connection(), cast(Table, Delivery.__table__), DELIVERY_COLUMNS)
    for members in stream_audience(session=session, alert=alert, batch_size=5000):
        rows: list[tuple[Any, ...]] = []
        for m in members:
            held = None if urgent else quiet_until(m.quiet_from, m.quiet_until, moment)
            if held is not None and held >= alert.expires_at:
                rows.append(
                    (
                        alert.id,
                        0,
                        m.subscriber_id,
                        m.contact_point_id,
                        m.channel,
                        m.language,
                        DeliveryStatus.SUPPRESSED.value,
                        0,
                        SuppressReason.QUIET_HOURS.value,
                        moment,
                        None,
                        moment,
                    )
                )
                plan.counts[(m.channel, DeliveryStatus.SUPPRESSED.value)] += 1
                continue
            number = batches.assign(m.channel, held or moment)
            rows.append(
                (
                    alert.id,
                    number,
                    m.subscriber_id,
                    m.contact_point_id,
                    m.channel,
                    m.language,
                    DeliveryStatus.PENDING.value,
                    0,
                    None,
                    moment,
                    held,
                    None,
                )
            )
            plan.counts[(m.channel, DeliveryStatus.PENDING.value)] += 1
        write(rows)
    if batches.rows:
        session.execute(
            insert(cast(Table, DispatchBatch.__table__)),
            [
                {"alert_id": alert.id, "state": BatchState.QUEUED.value, "runs": 0, **row}
                for row in batches.rows.values()
            ],
        )
    progress.add(session, alert.id, plan.counts)
    plan.batches = len(batches.rows)
    plan.due = [
        BatchRef(alert.id, number, row["channel"], urgent)
        for number, row in sorted(batches.rows.items())
        if row["next_run_at"] <= moment
    ]
    audit.record(
        session=session,
        actor="system:planner",
        action="alert.planned",
        object_type="alert",
        object_id=alert.id,
        payload={
            "batches": plan.batches,
            "deliveries": {f"{c}:{s}": n for (c, s), n in sorted(plan.counts.items())},
        },
    )
    return plan
