"""The outbox: the one owner of every change to a batch row (`DispatchBatch`).

A batch is written, queued, with its deliveries in the planning transaction; the task that
sends it is published only after the commit, and the sweeper publishes again whatever a
crash, a retry time or a lost message left waiting. A batch row says:

    state        queued while any of its rows may still go out, then done
    next_run_at  when its task should run next (its earliest waiting row is due)
    enqueued_at  when its task was last published (None: due to be published)
    claimed_at   the lease: the claim time of the oldest row still held by a worker
    runs         how many times its task has claimed

A lease is judged by the claim it guards: nothing a run that won no rows does moves it, or
a dead worker's rows would be held for ever. Locks are taken in one order by every
transaction that moves rows: deliveries, then the alert's counters, then the batch row.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, Update, and_, case, func, insert, or_, select, update
from sqlalchemy.orm import Session

from broadcaster.alerts.models import URGENT, Alert, AlertStatus
from broadcaster.db.engine import UTCDateTime, utcnow
from broadcaster.dispatch.models import BatchState, Delivery, DeliveryStatus, DispatchBatch

D = DeliveryStatus


@dataclass(frozen=True, slots=True)
class BatchRef:
    """A batch whose task is to be published, and whether it jumps the queue."""

    alert_id: int
    batch_no: int
    channel: str
    urgent: bool


@dataclass(frozen=True, slots=True)
class LapsedLease:
    """A batch whose lease ran out, and the status of its alert."""

    alert_id: int
    batch_no: int
    alert_status: AlertStatus


class Outbox:
    """Every write of `DispatchBatch`, and the queries that find batches to act on."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def _batch(self, alert_id: int, batch_no: int) -> Update:
        return update(DispatchBatch).where(
            DispatchBatch.alert_id == alert_id, DispatchBatch.batch_no == batch_no
        )

    def add(self, *, alert_id: int, batches: Iterable[dict[str, Any]]) -> None:
        """Write an alert's batches, queued (each row: batch_no, channel, size, next_run_at)."""
        rows = [
            {"alert_id": alert_id, "state": BatchState.QUEUED.value, "runs": 0, **row}
            for row in batches
        ]
        if rows:
            self.session.execute(insert(cast(Table, DispatchBatch.__table__)), rows)

    def mark_enqueued(self, *, refs: Sequence[BatchRef], now: datetime | None = None) -> None:
        """Note that these batches are being published, so the sweeper leaves them a while."""
        moment = now or utcnow()
        by_alert: dict[int, list[int]] = {}
        for ref in refs:
            by_alert.setdefault(ref.alert_id, []).append(ref.batch_no)
        for alert_id, numbers in by_alert.items():
            for start in range(0, len(numbers), 1000):
                self.session.execute(
                    update(DispatchBatch)
                    .where(
                        DispatchBatch.alert_id == alert_id,
                        DispatchBatch.batch_no.in_(numbers[start : start + 1000]),
                    )
                    .values(enqueued_at=moment)
                )

    def record_run(self, *, alert_id: int, batch_no: int, won_rows: bool, now: datetime) -> None:
        """A run of the batch's task has claimed: counted, and when it won rows the lease
        starts, unless an older claim still holds some (the lease is the oldest's). A run
        that won nothing leaves the lease alone."""
        values: dict[str, Any] = {"runs": DispatchBatch.runs + 1}
        if won_rows:
            values["claimed_at"] = func.coalesce(DispatchBatch.claimed_at, now)
        self.session.execute(self._batch(alert_id, batch_no).values(**values))

    def reschedule(
        self, *, alert_id: int, batch_no: int, now: datetime, lease_seconds: float
    ) -> None:
        """The batch runs again when its earliest waiting row is due, or is done when none
        waits: counted over the whole batch, not just the rows this run claimed.

        Its lease (`claimed_at`) is that of the oldest row still held; rows held by another
        run and nothing else waiting: the batch runs again when that lease ends, which is
        when the sweeper releases them if their worker is gone.
        """
        pending = Delivery.status == D.PENDING
        sending = Delivery.status == D.SENDING
        waiting, held, earliest, held_since = self.session.execute(
            select(
                func.sum(case((pending, 1), else_=0)),
                func.sum(case((sending, 1), else_=0)),
                func.min(
                    case((pending, func.coalesce(Delivery.next_attempt_at, now))),
                    type_=UTCDateTime(),
                ),
                func.min(case((sending, Delivery.claimed_at)), type_=UTCDateTime()),
            ).where(
                Delivery.alert_id == alert_id,
                Delivery.batch_no == batch_no,
                Delivery.status.in_([D.PENDING, D.SENDING]),
            )
        ).one()
        batch = self._batch(alert_id, batch_no)
        if waiting:
            self.session.execute(
                batch.values(
                    next_run_at=max(earliest, now), enqueued_at=None, claimed_at=held_since
                )
            )
        elif held:
            lease_end = held_since + timedelta(seconds=lease_seconds)
            self.session.execute(
                batch.values(
                    next_run_at=max(lease_end, now), enqueued_at=None, claimed_at=held_since
                )
            )
        else:
            self.session.execute(batch.values(state=BatchState.DONE, claimed_at=None))

    def close(self, *, alert_ids: Sequence[int]) -> None:
        """Every batch of these alerts is done (they expired: nothing more goes out)."""
        if alert_ids:
            self.session.execute(
                update(DispatchBatch)
                .where(DispatchBatch.alert_id.in_(alert_ids))
                .values(state=BatchState.DONE)
            )

    def lapsed_leases(self, *, claimed_before: datetime) -> list[LapsedLease]:
        """Batches whose lease began before `claimed_before`, whatever their state: an
        expired alert's batches are done, but a dead worker's rows in them must still end."""
        rows = self.session.execute(
            select(DispatchBatch.alert_id, DispatchBatch.batch_no, Alert.status)
            .join(Alert, Alert.id == DispatchBatch.alert_id)
            .where(
                DispatchBatch.claimed_at.is_not(None),
                DispatchBatch.claimed_at < claimed_before,
            )
        ).all()
        return [LapsedLease(int(a), int(b), status) for a, b, status in rows]

    def lease_lapsed(self, *, alert_id: int, batch_no: int, released: bool, now: datetime) -> None:
        """After a lapsed lease's rows were released or withdrawn: the lease follows the
        oldest row still held, and a batch whose rows wait again (`released`) is due now
        and to be published."""
        held_since = self.session.scalar(
            select(func.min(Delivery.claimed_at)).where(
                Delivery.alert_id == alert_id,
                Delivery.batch_no == batch_no,
                Delivery.status == D.SENDING,
            )
        )
        values: dict[str, object] = {"claimed_at": held_since}
        if released:
            values |= {"enqueued_at": None, "next_run_at": now}
        self.session.execute(self._batch(alert_id, batch_no).values(**values))

    def due(
        self,
        *,
        now: datetime,
        requeue_seconds: float,
        busy_channels: frozenset[str] = frozenset(),
        limit: int = 5000,
    ) -> list[BatchRef]:
        """Queued batches of dispatching alerts that are due and not published lately.

        A batch published a while ago is due again only when its channel's queue has
        drained (`busy_channels` names those that have not): in a long queue it is
        waiting, not lost, and publishing every waiting batch again would only lengthen
        the queue.
        """
        dispatching = select(Alert.id).where(Alert.status == AlertStatus.DISPATCHING)
        due = self.session.execute(
            select(
                DispatchBatch.alert_id,
                DispatchBatch.batch_no,
                DispatchBatch.channel,
                Alert.severity,
            )
            .join(Alert, Alert.id == DispatchBatch.alert_id)
            .where(
                DispatchBatch.state == BatchState.QUEUED,
                DispatchBatch.next_run_at <= now,
                or_(
                    DispatchBatch.enqueued_at.is_(None),
                    and_(
                        DispatchBatch.enqueued_at < now - timedelta(seconds=requeue_seconds),
                        DispatchBatch.channel.not_in(sorted(busy_channels)),
                    ),
                ),
                DispatchBatch.alert_id.in_(dispatching),
            )
            .order_by(DispatchBatch.next_run_at)
            .limit(limit)
        ).all()
        return [
            BatchRef(alert_id, batch_no, channel, severity in URGENT)
            for alert_id, batch_no, channel, severity in due
        ]
