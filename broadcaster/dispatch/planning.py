"""Planning an approved alert: stream its audience into delivery rows and batches, chunk
by chunk, each chunk committed and its batches published while the rest is planned.

    lease     one guarded UPDATE of the alert: approved and due -> dispatching, or (a
              planner that stopped) dispatching, not yet planned, its planner silent for
              longer than the lease; either way the planner's token is bumped, and every
              later write of this planner is fenced by it
    snapshot  the audience is read through one read-only transaction (REPEATABLE READ on
              PostgreSQL; a read transaction of SQLite's WAL) that lives for the whole
              plan: one consistent view, so no contact point is missed or repeated, even
              while residents change their subscriptions
    chunks    the most urgent channel first (`profiles.PLANNING_ORDER`), the first chunk
              small and each next one larger: a chunk's transaction renews the lease
              (fenced), appends its deliveries (COPY on PostgreSQL), writes its batches
              (the outbox) and counts them; once it has committed its batches are
              published, so the first messages leave while the rest is still planned
    done      a last fenced write marks the alert planned and audits what was written;
              only then may the sweeper finish it

A plan that is not urgent steps aside for an urgent one: between two chunks it looks for
a severe or extreme alert approved and due, and if there is one it lets go of its lease
(fenced, audited `alert.planning_paused`) and ends, having written at least one chunk;
the task layer hands it on again behind the urgent plan, and the new run goes on like a
resumed one. An extreme alert approved during a whole-city plan waits for one chunk, not
for the whole city.

A planner that dies (or stalls past its lease) leaves the chunks it committed; the sweeper
hands the alert to a new planner, which takes the lease (the old one can write nothing
more: its token is stale) and plans the contact points that have no delivery yet, through
a snapshot of its own. A cancel or an expiry between two chunks ends the plan: the next
chunk's fenced write finds the alert no longer dispatching, and what was planned is
suppressed by the cancel itself (it waits for a chunk in progress: the chunk holds the
alert's row until it commits).

Quiet hours are settled here: an informational alert to a resident inside their quiet
window waits in a batch of its own until the window ends, or is suppressed if the alert
expires first. Severe and extreme alerts ignore quiet hours. The few distinct windows are
read first and each is settled once, in Python (`quiet_until`).

An Update or Cancel is planned like any alert: only its audience differs (those who
received the original, see `audience`), and its own severity settles quiet hours.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, and_, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from broadcaster.alerts.lifecycle import Move, transition
from broadcaster.alerts.models import URGENT, Alert, AlertStatus
from broadcaster.audit import trail as audit
from broadcaster.clock import WARSAW
from broadcaster.db.bulk import row_writer
from broadcaster.db.engine import utcnow
from broadcaster.dispatch import progress
from broadcaster.dispatch.audience import AudienceMember, stream_audience
from broadcaster.dispatch.models import Delivery, DeliveryStatus, DispatchBatch
from broadcaster.dispatch.outbox import BatchRef, Outbox
from broadcaster.dispatch.profiles import PLANNING_ORDER
from broadcaster.dispatch.states import SuppressReason
from broadcaster.errors import Conflict
from subscribers.models import Subscriber

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
# Contact points in the first chunk, and in the largest: the first is committed and its
# batches published within a few milliseconds of the first rows coming out of the cursor;
# then chunks double, up to what keeps a chunk's transaction (and the alert row it holds)
# short.
FIRST_CHUNK = 1_000
LARGEST_CHUNK = 50_000
Window = tuple[time | None, time | None]  # a resident's quiet hours (local from, until)
Publish = Callable[[list[BatchRef]], None]

_log = logging.getLogger(__name__)


def is_urgent(alert: Alert) -> bool:
    return alert.severity in URGENT


def is_due(alert: Alert, now: datetime) -> bool:
    """Whether an alert may go out at `now`: it has no send time, or has reached it
    (`approved_and_due` asks the same of the alerts table)."""
    return alert.send_at is None or alert.send_at <= now


def approved_and_due(now: datetime) -> ColumnElement[bool]:
    """Alerts approved whose time has come: waiting for a planner."""
    return and_(
        Alert.status == AlertStatus.APPROVED,
        or_(Alert.send_at.is_(None), Alert.send_at <= now),
    )


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


def quiet_windows(*, session: Session, now: datetime) -> dict[Window, datetime]:
    """Each distinct quiet window that `now` falls in, with the moment it ends (UTC).

    Residents choose their windows from a clock, so there are few distinct ones; settling
    each once keeps `quiet_until` the single rule, for any number of residents.
    """
    rows = session.execute(
        select(Subscriber.quiet_from, Subscriber.quiet_until)
        .where(Subscriber.quiet_from.is_not(None), Subscriber.quiet_until.is_not(None))
        .distinct()
    ).all()
    held = {(start, end): quiet_until(start, end, now) for start, end in rows}
    return {window: ends for window, ends in held.items() if ends is not None}


@dataclass
class Plan:
    """What one planner run wrote: its batches due now (already published through the
    planner's `publish`), the deliveries it wrote by (channel, status), its chunks."""

    alert_id: int
    urgent: bool
    resumed: bool = False
    due: list[BatchRef] = field(default_factory=list)
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    batches: int = 0
    chunks: int = 0
    # False when the plan stopped early: the alert was cancelled or expired meanwhile,
    # another planner took the alert over, or it stepped aside for an urgent alert.
    complete: bool = False
    # It stepped aside for an urgent alert: its lease is free and it must be handed on.
    stepped_aside: bool = False


class _Fenced(Exception):
    """This planner's lease is gone (taken over), or its alert no longer dispatching."""


@dataclass(frozen=True, slots=True)
class _Lease:
    token: int
    resumed: bool
    moment: datetime


BatchRows = dict[int, dict[str, Any]]  # batch_no -> the dispatch_batches row (less alert, state)


class _Batches:
    """Hands out batch numbers: one open batch per (channel, time it may leave), closed
    at the end of every chunk, so that a batch published is never added to."""

    def __init__(self, size: int, next_no: int) -> None:
        self.size = size
        self.next_no = next_no
        self.open: dict[tuple[str, datetime], tuple[int, int]] = {}
        self.rows: BatchRows = {}

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

    def close(self) -> BatchRows:
        """The batches of the chunk just planned; the next chunk starts new ones."""
        rows, self.rows, self.open = self.rows, {}, {}
        return rows


def plan_alert(
    *,
    sessions: sessionmaker[Session],
    alert_id: int,
    batch_size: int = 500,
    publish: Publish | None = None,
    lease_seconds: float = 30.0,
    now: datetime | None = None,
    first_chunk: int = FIRST_CHUNK,
    largest_chunk: int = LARGEST_CHUNK,
) -> Plan | None:
    """Plan an approved, due alert (or go on with one whose planner stopped), chunk by
    chunk, each chunk's due batches handed to `publish` after its commit.

    None if there is nothing to plan: not approved, scheduled later, already planned, or
    planned right now by a planner whose lease still runs.
    """
    lease = _take_lease(sessions, alert_id, now or utcnow(), lease_seconds)
    if lease is None:
        return None
    with sessions.begin() as session:
        alert = session.get_one(Alert, alert_id)
        urgent = is_urgent(alert)
        expires_at = alert.expires_at
        windows = {} if urgent else quiet_windows(session=session, now=lease.moment)
        next_no = 1 + (
            session.scalar(
                select(func.max(DispatchBatch.batch_no)).where(DispatchBatch.alert_id == alert_id)
            )
            or 0
        )
    plan = Plan(alert_id=alert_id, urgent=urgent, resumed=lease.resumed)
    chunks = _Chunks(
        alert_id=alert_id,
        batches=_Batches(batch_size, next_no),
        moment=lease.moment,
        expires_at=expires_at,
        windows=windows,
        urgent=urgent,
    )
    try:
        with _snapshot(sessions) as reader:
            alert = reader.get_one(Alert, alert_id)
            channels = [c.value for c in PLANNING_ORDER if c.value in alert.channels]
            for members in _chunked(
                reader, alert, channels, lease.resumed, first_chunk, largest_chunk
            ):
                due = _write_chunk(sessions, lease, chunks, members, plan)
                if publish is not None and due:
                    # Noted first, so that the sweeper leaves them to this publish; a
                    # crash between the two leaves them to it after `requeue_seconds`.
                    with sessions.begin() as session:
                        Outbox(session).mark_enqueued(refs=due)
                    publish(due)
                if not urgent and _urgent_waiting(sessions, alert_id):
                    _step_aside(sessions, lease, plan)
                    return plan
        _finish(sessions, lease, plan)
    except _Fenced:
        _log.warning("alert %s: planning stopped, the alert moved on or was taken over", alert_id)
        return plan
    plan.complete = True
    return plan


def _take_lease(
    sessions: sessionmaker[Session], alert_id: int, moment: datetime, lease_seconds: float
) -> _Lease | None:
    """Start the alert's dispatch, or take over a plan whose planner went silent."""
    with sessions.begin() as session:
        alert = session.get(Alert, alert_id)
        if alert is None:
            return None
        token = alert.planner_token + 1
        if alert.status is AlertStatus.APPROVED:
            if not is_due(alert, moment):
                return None
            try:
                transition(
                    session=session,
                    alert=alert,
                    move=Move.START_DISPATCH,
                    actor="system:planner",
                    values={
                        "dispatched_at": moment,
                        "planner_token": token,
                        "planner_seen_at": moment,
                    },
                )
            except Conflict:
                return None
            return _Lease(token, resumed=False, moment=moment)
        silent_since = moment - timedelta(seconds=lease_seconds)
        taken = session.execute(
            update(Alert)
            .where(
                Alert.id == alert_id,
                Alert.status == AlertStatus.DISPATCHING,
                Alert.planned_at.is_(None),
                Alert.planner_token == alert.planner_token,
                or_(Alert.planner_seen_at < silent_since, Alert.planner_seen_at.is_(None)),
            )
            .values(planner_token=token, planner_seen_at=moment)
            .execution_options(synchronize_session=False)
        )
        if taken.rowcount != 1:  # type: ignore[attr-defined]
            return None
        audit.record(
            session=session,
            actor="system:planner",
            action="alert.planning_resumed",
            object_type="alert",
            object_id=alert_id,
            payload={"planner_run": token},
        )
    return _Lease(token, resumed=True, moment=moment)


@contextmanager
def _snapshot(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """A session that reads one consistent view of the database until it is closed."""
    with sessions() as reader:
        if reader.get_bind().dialect.name == "postgresql":
            reader.connection(
                execution_options={
                    "isolation_level": "REPEATABLE READ",
                    "postgresql_readonly": True,
                }
            )
        try:
            yield reader
        finally:
            reader.rollback()


def _chunked(
    reader: Session,
    alert: Alert,
    channels: Sequence[str],
    unplanned: bool,
    first: int,
    largest: int,
) -> Iterator[list[AudienceMember]]:
    """The audience, channel after channel, in chunks that start at `first` contact points
    and double up to `largest`."""
    size = first
    for channel in channels:
        chunk: list[AudienceMember] = []
        for members in stream_audience(
            session=reader,
            alert=alert,
            batch_size=largest,
            first_batch=first,
            channels=[channel],
            unplanned=unplanned,
        ):
            chunk.extend(members)
            if len(chunk) >= size:
                yield chunk
                chunk = []
                size = min(largest, size * 2)
        if chunk:
            yield chunk


@dataclass
class _Chunks:
    """What turns audience members into delivery rows, the same for every chunk."""

    alert_id: int
    batches: _Batches
    moment: datetime
    expires_at: datetime
    windows: dict[Window, datetime]
    urgent: bool

    def rows(
        self, members: list[AudienceMember], written_at: datetime, counts: Counter[tuple[str, str]]
    ) -> list[tuple[Any, ...]]:
        alert_id, moment, expires_at, windows = (
            self.alert_id,
            self.moment,
            self.expires_at,
            self.windows,
        )
        assign = self.batches.assign
        pending, suppressed = DeliveryStatus.PENDING.value, DeliveryStatus.SUPPRESSED.value
        quiet = SuppressReason.QUIET_HOURS.value
        rows: list[tuple[Any, ...]] = []
        for m in members:
            held = windows.get((m.quiet_from, m.quiet_until)) if windows else None
            if held is not None and held >= expires_at:
                rows.append(
                    (alert_id, 0, m.subscriber_id, m.contact_point_id, m.channel, m.language,
                     suppressed, 0, quiet, written_at, None, written_at)
                )  # fmt: skip
                counts[(m.channel, suppressed)] += 1
                continue
            rows.append(
                (alert_id, assign(m.channel, held or moment), m.subscriber_id,
                 m.contact_point_id, m.channel, m.language, pending, 0, None, written_at,
                 held, None)
            )  # fmt: skip
            counts[(m.channel, pending)] += 1
        return rows


def _fence(
    session: Session, lease: _Lease, alert_id: int, seen_at: datetime | None, **values: Any
) -> None:
    """Renew the lease to `seen_at` (None lets go of it) and write `values`, if the lease
    is still this planner's and the alert still dispatching; _Fenced if not. Taken first
    in a chunk's transaction, the alert's row stays held until the commit: a cancel waits
    for the chunk, then suppresses it."""
    fenced = session.execute(
        update(Alert)
        .where(
            Alert.id == alert_id,
            Alert.status == AlertStatus.DISPATCHING,
            Alert.planned_at.is_(None),
            Alert.planner_token == lease.token,
        )
        .values(planner_seen_at=seen_at, **values)
        .execution_options(synchronize_session=False)
    )
    if fenced.rowcount != 1:  # type: ignore[attr-defined]
        raise _Fenced


def _urgent_waiting(sessions: sessionmaker[Session], alert_id: int) -> list[int]:
    """Severe and extreme alerts approved and due, waiting for a planner (the sweeper's
    `alerts_to_plan` finds the same ones)."""
    with sessions() as session:
        moment = utcnow()
        return list(
            session.scalars(
                select(Alert.id).where(
                    Alert.id != alert_id,
                    approved_and_due(moment),
                    Alert.severity.in_(sorted(URGENT)),
                )
            )
        )


def _step_aside(sessions: sessionmaker[Session], lease: _Lease, plan: Plan) -> None:
    """Let go of the lease for an urgent alert: no planner holds the alert now (its
    `planner_seen_at` is cleared), so the next run takes it over at once."""
    with sessions.begin() as session:
        waiting = _urgent_waiting(sessions, plan.alert_id)
        _fence(session, lease, plan.alert_id, None)
        audit.record(
            session=session,
            actor="system:planner",
            action="alert.planning_paused",
            object_type="alert",
            object_id=plan.alert_id,
            payload={"planner_run": lease.token, "for_alerts": waiting},
        )
    plan.stepped_aside = True


def _write_chunk(
    sessions: sessionmaker[Session],
    lease: _Lease,
    chunks: _Chunks,
    members: list[AudienceMember],
    plan: Plan,
) -> list[BatchRef]:
    """One chunk in one transaction: deliveries, batches, counters; its due batches."""
    counts: Counter[tuple[str, str]] = Counter()
    with sessions.begin() as session:
        _fence(session, lease, chunks.alert_id, utcnow())
        # Every row of a plan is dated by the plan's moment, whichever chunk wrote it.
        rows = chunks.rows(members, chunks.moment, counts)
        row_writer(session.connection(), cast(Table, Delivery.__table__), DELIVERY_COLUMNS)(rows)
        batches = chunks.batches.close()
        outbox = Outbox(session)
        outbox.add(alert_id=chunks.alert_id, batches=batches.values())
        # Rows born in their status, with no transition: counted here, once.
        progress.count_planned(session, chunks.alert_id, counts)
        due = [
            BatchRef(chunks.alert_id, number, row["channel"], chunks.urgent)
            for number, row in sorted(batches.items())
            if row["next_run_at"] <= chunks.moment
        ]
    plan.counts.update(counts)
    plan.batches += len(batches)
    plan.chunks += 1
    plan.due.extend(due)
    return due


def _finish(sessions: sessionmaker[Session], lease: _Lease, plan: Plan) -> None:
    """The last fenced write: the alert is planned, and the trail says what this run
    wrote (a resumed plan's earlier runs wrote the rest: see their chunks' batches)."""
    with sessions.begin() as session:
        moment = utcnow()
        _fence(session, lease, plan.alert_id, moment, planned_at=moment)
        batches = session.scalar(
            select(func.count())
            .select_from(DispatchBatch)
            .where(DispatchBatch.alert_id == plan.alert_id)
        )
        audit.record(
            session=session,
            actor="system:planner",
            action="alert.planned",
            object_type="alert",
            object_id=plan.alert_id,
            payload={
                "batches": batches,
                "chunks": plan.chunks,
                "resumed": plan.resumed,
                # Written by this run, as "channel:status": how they were born.
                "deliveries": {f"{c}:{s}": n for (c, s), n in sorted(plan.counts.items())},
            },
        )
