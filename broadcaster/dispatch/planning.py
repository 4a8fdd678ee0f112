"""Planning an approved alert: freeze its audience into delivery rows and batches.

One transaction moves the alert to dispatching, writes one delivery per contact point of
the audience, grouped into batches of one channel, writes the batch rows (the outbox), and
sets the progress counters. The caller publishes the batch tasks only after the commit; the
sweeper publishes whatever a crash left unpublished.

On PostgreSQL the deliveries are written by one `INSERT ... SELECT` over the audience query,
so no row travels to Python and back (streaming a million rows out of a cursor and into
COPY took 11 s of client CPU on top of the server's own work). Elsewhere (SQLite) the
audience is streamed through Python and appended in chunks. Memory stays flat either way.

Quiet hours are settled here: an informational alert to a resident inside their quiet
window waits in a batch of its own until the window ends, or is suppressed if the alert
expires first. Severe and extreme alerts ignore quiet hours. The few distinct windows are
read first and each is settled once, in Python (`quiet_until`), for both paths.

An Update or Cancel is planned like any alert: only its audience differs (those who
received the original, see `targeting`), and its own severity settles quiet hours.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any, cast

from sqlalchemy import Table, select, text
from sqlalchemy.orm import Session

from broadcaster.alerts.lifecycle import Move, transition
from broadcaster.alerts.models import URGENT, Alert, AlertStatus
from broadcaster.audit import trail as audit
from broadcaster.clock import WARSAW
from broadcaster.db.bulk import row_writer
from broadcaster.db.engine import utcnow
from broadcaster.dispatch import progress
from broadcaster.dispatch.audience import audience_query, stream_audience
from broadcaster.dispatch.models import Delivery, DeliveryStatus
from broadcaster.dispatch.outbox import BatchRef, Outbox
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
Window = tuple[time | None, time | None]  # a resident's quiet hours (local from, until)
_counters = itertools.count(1)


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


@dataclass
class Plan:
    alert_id: int
    urgent: bool
    due: list[BatchRef] = field(default_factory=list)
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    batches: int = 0


BatchRows = dict[int, dict[str, Any]]  # batch_no -> the dispatch_batches row (less alert, state)


class _Batches:
    """Hands out batch numbers: one open batch per (channel, time it may leave)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.next_no = 1
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


def quiet_windows(*, session: Session, now: datetime) -> dict[Window, datetime]:
    """Each distinct quiet window that `now` falls in, with the moment it ends (UTC).

    Residents choose their windows from a clock, so there are few distinct ones; settling
    each once keeps `quiet_until` the single rule, for any number of residents. A window
    that a resident sets between this read and the audience's is not in the map: that
    resident is planned as if the change had come just after the alert.
    """
    rows = session.execute(
        select(Subscriber.quiet_from, Subscriber.quiet_until)
        .where(Subscriber.quiet_from.is_not(None), Subscriber.quiet_until.is_not(None))
        .distinct()
    ).all()
    held = {(start, end): quiet_until(start, end, now) for start, end in rows}
    return {window: ends for window, ends in held.items() if ends is not None}


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
    windows = {} if urgent else quiet_windows(session=session, now=moment)
    write = (
        _write_in_database
        if session.connection().dialect.name == "postgresql"
        else _write_through_python
    )
    batches = write(
        session=session,
        alert=alert,
        moment=moment,
        batch_size=batch_size,
        windows=windows,
        counts=plan.counts,
    )
    Outbox(session).add(alert_id=alert.id, batches=batches.values())
    # Rows born in their status, with no transition: counted here, once.
    progress.count_planned(session, alert.id, plan.counts)
    plan.batches = len(batches)
    plan.due = [
        BatchRef(alert.id, number, row["channel"], urgent)
        for number, row in sorted(batches.items())
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


def _write_through_python(
    *,
    session: Session,
    alert: Alert,
    moment: datetime,
    batch_size: int,
    windows: dict[Window, datetime],
    counts: Counter[tuple[str, str]],
) -> BatchRows:
    """Stream the audience and append its deliveries in chunks (the portable path)."""
    batches = _Batches(batch_size)
    write = row_writer(session.connection(), cast(Table, Delivery.__table__), DELIVERY_COLUMNS)
    alert_id, expires_at = alert.id, alert.expires_at
    pending, suppressed = DeliveryStatus.PENDING.value, DeliveryStatus.SUPPRESSED.value
    quiet = SuppressReason.QUIET_HOURS.value
    for members in stream_audience(session=session, alert=alert, batch_size=5000):
        rows: list[tuple[Any, ...]] = []
        for m in members:
            held = windows.get((m.quiet_from, m.quiet_until)) if windows else None
            if held is not None and held >= expires_at:
                rows.append(
                    (
                        alert_id,
                        0,
                        m.subscriber_id,
                        m.contact_point_id,
                        m.channel,
                        m.language,
                        suppressed,
                        0,
                        quiet,
                        moment,
                        None,
                        moment,
                    )
                )
                counts[(m.channel, suppressed)] += 1
                continue
            number = batches.assign(m.channel, held or moment)
            rows.append(
                (
                    alert_id,
                    number,
                    m.subscriber_id,
                    m.contact_point_id,
                    m.channel,
                    m.language,
                    pending,
                    0,
                    None,
                    moment,
                    held,
                    None,
                )
            )
            counts[(m.channel, pending)] += 1
        write(rows)
    return batches.rows


@dataclass(frozen=True, slots=True)
class _Group:
    """Deliveries of one channel that leave at one time (or are suppressed, number 0),
    counted by a temporary sequence."""

    channel: str
    release: int  # -1 suppressed, 0 now, r > 0 held until `leaves_at`
    number: int  # batch k of the group is numbered k * stride + number; 0: no batch
    counter: str
    leaves_at: datetime | None


def _write_in_database(
    *,
    session: Session,
    alert: Alert,
    moment: datetime,
    batch_size: int,
    windows: dict[Window, datetime],
    counts: Counter[tuple[str, str]],
) -> BatchRows:
    """One INSERT ... SELECT over the audience (PostgreSQL).

    Each group of rows, a (channel, time it may leave), counts its rows with a temporary
    sequence; its k-th batch of `batch_size` rows gets number k * stride + group number.
    The numbers are unique but not contiguous (each group steps through its own residue):
    contiguous ones need each group's size first, a second pass over the audience, and
    `row_number()` needs a sort of it. The sequences' final values then give every batch's
    size and the counters, with no second pass over the deliveries either.
    """
    connection = session.connection()
    releases = sorted({ends for ends in windows.values() if ends < alert.expires_at})
    release_of = {
        window: releases.index(ends) + 1 if ends < alert.expires_at else -1
        for window, ends in windows.items()
    }
    stride = len(alert.channels) * (len(releases) + 1)
    run = next(_counters)
    groups: list[_Group] = []
    for c, channel in enumerate(alert.channels):
        for release in range(-1 if release_of else 0, len(releases) + 1):
            groups.append(
                _Group(
                    channel=channel,
                    release=release,
                    number=0 if release < 0 else c * (len(releases) + 1) + release + 1,
                    counter=f"pg_temp.plan_{alert.id}_{run}_{len(groups)}",
                    leaves_at=releases[release - 1] if release > 0 else None,
                )
            )
    for group in groups:
        connection.execute(text(f"CREATE TEMPORARY SEQUENCE {group.counter}"))

    params: dict[str, Any] = {
        "alert_id": alert.id,
        "size": batch_size,
        "stride": stride,
        "now": moment,
        "pending": DeliveryStatus.PENDING.value,
        "suppressed": DeliveryStatus.SUPPRESSED.value,
        "quiet": SuppressReason.QUIET_HOURS.value,
    }
    group_rows = []
    for n, group in enumerate(groups):
        group_rows.append(
            f"(:channel_{n}, {group.release}, {group.number}, "
            f"'{group.counter}'::regclass, CAST(:leaves_{n} AS timestamptz))"
        )
        params[f"channel_{n}"] = group.channel
        params[f"leaves_{n}"] = group.leaves_at
    release_of_row = "0"
    quiet_join = ""
    if release_of:
        window_rows = []
        for n, ((start, end), number) in enumerate(release_of.items()):
            window_rows.append(f"(CAST(:from_{n} AS time), CAST(:until_{n} AS time), {number})")
            params[f"from_{n}"], params[f"until_{n}"] = start, end
        quiet_join = (
            f"LEFT JOIN (VALUES {', '.join(window_rows)}) AS w (quiet_from, quiet_until, release)"
            " ON w.quiet_from = a.quiet_from AND w.quiet_until = a.quiet_until"
        )
        release_of_row = "coalesce(w.release, 0)"
    audience = audience_query(alert).compile(
        dialect=connection.dialect, compile_kwargs={"literal_binds": True}
    )
    audience_sql = str(audience).replace(":", "\\:")  # literal colons, not parameters
    # One nextval per row: in each CASE branch, and CASE evaluates only the branch taken.
    connection.execute(
        text(
            f"INSERT INTO deliveries ({', '.join(DELIVERY_COLUMNS)}) "  # noqa: S608 - our SQL
            "SELECT :alert_id, "
            "CASE WHEN g.number = 0 THEN 0 * nextval(g.counter) "
            "ELSE (nextval(g.counter) - 1) / :size * :stride + g.number END, "
            "a.subscriber_id, a.id, a.channel, a.language, "
            "CASE WHEN g.number = 0 THEN :suppressed ELSE :pending END, 0, "
            "CASE WHEN g.number = 0 THEN :quiet END, "
            "CAST(:now AS timestamptz), g.leaves_at, "
            "CASE WHEN g.number = 0 THEN CAST(:now AS timestamptz) END "
            f"FROM ({audience_sql}) AS a {quiet_join} "
            f"JOIN (VALUES {', '.join(group_rows)}) "
            "AS g (channel, release, number, counter, leaves_at) "
            f"ON g.channel = a.channel AND g.release = {release_of_row}"
        ),
        params,
    )
    sizes = connection.execute(
        text(
            " UNION ALL ".join(
                f"SELECT {n}, CASE WHEN is_called THEN last_value ELSE 0 END FROM {g.counter}"  # noqa: S608
                for n, g in enumerate(groups)
            )
        )
    ).all()
    connection.execute(text(f"DROP SEQUENCE {', '.join(g.counter for g in groups)}"))

    batches: BatchRows = {}
    for n, rows in sizes:
        group = groups[n]
        if not rows:
            continue
        if group.number == 0:
            counts[(group.channel, DeliveryStatus.SUPPRESSED.value)] += rows
            continue
        counts[(group.channel, DeliveryStatus.PENDING.value)] += rows
        for k in range(math.ceil(rows / batch_size)):
            number = k * stride + group.number
            batches[number] = {
                "batch_no": number,
                "channel": group.channel,
                "size": min(batch_size, rows - k * batch_size),
                "next_run_at": group.leaves_at or moment,
            }
    return batches
