"""The delivery state machine: the one place where a delivery's status changes.

    pending --claim--> sending --sent--> sent --delivered--> delivered
       |                  |  \\--temporary failure--> pending (attempt counted, backoff)
       |                  \\--permanent failure / deadline--> failed
       \\--suppress (cancelled, expired, opted out, quiet hours)--> suppressed
    sending --withdraw (cancelled or expired before its wave left)--> suppressed
    sent --undelivered (receipt: undelivered, bounced, token dead)--> failed

Every move is a bulk, guarded UPDATE (`WHERE status = <expected>`): a batch that Celery
delivers twice finds its rows already claimed and sends nothing, and a late receipt cannot
resurrect a delivery that ended otherwise. Each method returns how many rows moved, so the
caller can tell a duplicate from real work, and moves the alerts' progress counters
(`progress`) by exactly the rows it moved, in the same transaction: no other code moves
them (planning only sets the first count of the rows it writes).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, NamedTuple, cast

from sqlalchemy import Table, Update, bindparam, func, or_, select, update
from sqlalchemy.orm import Session

from broadcaster.alerts.models import Alert, AlertStatus
from broadcaster.db.engine import utcnow
from broadcaster.dispatch import progress
from broadcaster.dispatch.models import Delivery, DeliveryStatus
from broadcaster.dispatch.updates import Moved, run_counted, run_per_row
from subscribers.models import ContactPoint

D = DeliveryStatus
_table = cast(Table, Delivery.__table__)


class DeliveryEvent(StrEnum):
    CLAIM = "claim"
    SENT = "sent"
    TEMPORARY_FAILURE = "temporary_failure"
    PERMANENT_FAILURE = "permanent_failure"
    SUPPRESS = "suppress"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    # The worker holding the row died: its claim lapses and the row waits again.
    RELEASE = "release"
    # Claimed, but the alert was cancelled or expired before the row's wave left (or its
    # worker died holding it after the alert ended): it never goes out.
    WITHDRAW = "withdraw"


class SuppressReason(StrEnum):
    """Why a message was never sent; stored and counted, never a silent drop."""

    CANCELLED = "cancelled"
    EXPIRED = "expired"
    OPTED_OUT = "opted_out"
    QUIET_HOURS = "quiet_hours"
    UNVERIFIED = "unverified"
    ERASED = "erased"


def ended_reason(status: AlertStatus) -> SuppressReason:
    """Why a claimed row of an alert that stopped going out never left."""
    return SuppressReason.EXPIRED if status is AlertStatus.EXPIRED else SuppressReason.CANCELLED


class InvalidTransition(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class DeliveryChange:
    """One delivery a transition moves, with what it records on the row: the provider's
    message id, or the code of a failure (the provider's, or ours: no address, expired)."""

    delivery_id: int
    provider_id: str | None = None
    error_code: str | None = None


class ClaimedRow(NamedTuple):
    """A delivery won by `claim_batch`, with what sending it needs."""

    delivery_id: int
    contact_point_id: int
    channel: str
    language: str
    attempts: int
    # None where the contact point was disabled, unsubscribed or erased since planning.
    address: str | None


class DeliveryStateMachine:
    """Owns every transition of Delivery.status, as bulk guarded updates in `session`, and
    the progress counters that count the rows in each status."""

    # event -> (the states it may start from, the state it ends in). A delivery report can
    # overtake the worker that records the send, so receipts also move a row still sending.
    TRANSITIONS: ClassVar[dict[DeliveryEvent, tuple[frozenset[DeliveryStatus], DeliveryStatus]]] = {
        DeliveryEvent.CLAIM: (frozenset({D.PENDING}), D.SENDING),
        DeliveryEvent.SENT: (frozenset({D.SENDING}), D.SENT),
        DeliveryEvent.TEMPORARY_FAILURE: (frozenset({D.SENDING}), D.PENDING),
        DeliveryEvent.PERMANENT_FAILURE: (frozenset({D.SENDING}), D.FAILED),
        DeliveryEvent.SUPPRESS: (frozenset({D.PENDING}), D.SUPPRESSED),
        DeliveryEvent.DELIVERED: (frozenset({D.SENDING, D.SENT}), D.DELIVERED),
        DeliveryEvent.UNDELIVERED: (frozenset({D.SENDING, D.SENT}), D.FAILED),
        DeliveryEvent.RELEASE: (frozenset({D.SENDING}), D.PENDING),
        DeliveryEvent.WITHDRAW: (frozenset({D.SENDING}), D.SUPPRESSED),
    }
    FINAL: ClassVar[frozenset[DeliveryStatus]] = frozenset({D.DELIVERED, D.FAILED, D.SUPPRESSED})

    def __init__(self, session: Session) -> None:
        self.session = session
        # Counter moves waiting to be written, inside `counted_once` only.
        self._held: dict[int, Counter[progress.Key]] | None = None

    @classmethod
    def next_status(cls, current: DeliveryStatus, event: DeliveryEvent) -> DeliveryStatus:
        """The status `event` leads to from `current`; InvalidTransition if it may not."""
        sources, target = cls.TRANSITIONS[event]
        if current not in sources:
            raise InvalidTransition(f"{event.value} is not allowed from {current.value}")
        return target

    @classmethod
    def sources(cls, event: DeliveryEvent) -> list[DeliveryStatus]:
        """The states `event` may start from, in the order a delivery passes through them.

        An event with several sources runs one guarded UPDATE per source, so that each
        knows which counter its rows leave; the earlier state first, so a row that moves
        on between the two (a send recorded while its report is applied) is met by the
        later one, as one UPDATE over both states would meet it. No event's target is one
        of its own sources, so no row moves twice.
        """
        sources, _ = cls.TRANSITIONS[event]
        return [status for status in DeliveryStatus if status in sources]

    @contextmanager
    def counted_once(self) -> Iterator[None]:
        """Transitions made inside move the counters by one write at the end, in the same
        transaction, not one write per call: a batch's outcomes take several calls (one
        per retry time)."""
        if self._held is not None:
            yield
            return
        held: dict[int, Counter[progress.Key]] = {}
        self._held = held
        try:
            yield
        finally:
            self._held = None
        self._write(held)

    def _count(self, moved: Moved, source: DeliveryStatus, target: DeliveryStatus) -> int:
        """Move the counters by what one guarded UPDATE moved; how many rows that was."""
        deltas: dict[int, Counter[progress.Key]] = {} if self._held is None else self._held
        for (alert_id, channel), count in moved.items():
            if count:
                delta = deltas.setdefault(alert_id, Counter())
                delta[(channel, source.value)] -= count
                delta[(channel, target.value)] += count
        if self._held is None:
            self._write(deltas)
        return sum(moved.values())

    def _write(self, deltas: dict[int, Counter[progress.Key]]) -> None:
        for alert_id, delta in sorted(deltas.items()):
            progress.move(self.session, alert_id, delta)

    def _guarded(
        self, event: DeliveryEvent, source: DeliveryStatus
    ) -> tuple[Update, DeliveryStatus]:
        sources, target = self.TRANSITIONS[event]
        if source not in sources:
            raise InvalidTransition(f"{event.value} is not allowed from {source.value}")
        return update(_table).where(_table.c.status == source), target

    def _run(self, statement: Update, source: DeliveryStatus, target: DeliveryStatus) -> int:
        """Run one guarded UPDATE over any number of rows and count what it moved."""
        return self._count(run_counted(self.session.connection(), statement), source, target)

    def _per_row(self, event: DeliveryEvent, rows: list[dict[str, Any]], **values: Any) -> int:
        """One guarded UPDATE per row and source state; `rows` hold `b_id` and the `b_*`
        values that `values` refer to with bindparam."""
        if not rows:
            return 0
        moved = 0
        with self.counted_once():
            for source in self.sources(event):
                statement, target = self._guarded(event, source)
                counts = run_per_row(
                    self.session.connection(), statement, rows, status=target, **values
                )
                moved += self._count(counts, source, target)
        return moved

    def claim(self, delivery_ids: Sequence[int], *, now: datetime | None = None) -> list[int]:
        """pending -> sending for those of `delivery_ids` that are due; returns the ids won.

        A row not returned was claimed by someone else, already ended, or waits for a
        retry time still in the future.
        """
        if not delivery_ids:
            return []
        moment = now or utcnow()
        statement, target = self._guarded(DeliveryEvent.CLAIM, D.PENDING)
        result = self.session.connection().execute(
            statement.where(
                _table.c.id.in_(delivery_ids),
                or_(_table.c.next_attempt_at.is_(None), _table.c.next_attempt_at <= moment),
            )
            .values(status=target, attempts=_table.c.attempts + 1, claimed_at=moment)
            .returning(_table.c.id, _table.c.alert_id, _table.c.channel)
        )
        won = result.all()
        self._count(Counter((int(a), str(c)) for _, a, c in won), D.PENDING, target)
        return sorted(int(i) for i, _, _ in won)

    def claim_batch(
        self, *, alert_id: int, batch_no: int, now: datetime | None = None
    ) -> list[ClaimedRow]:
        """pending -> sending for a batch's due rows while its alert is dispatching.

        Returns the rows won, in id order. A batch delivered twice by the broker, or
        claimed after a cancel, wins nothing.
        """
        moment = now or utcnow()
        statement, target = self._guarded(DeliveryEvent.CLAIM, D.PENDING)
        dispatching = (
            select(Alert.id)
            .where(Alert.id == alert_id, Alert.status == AlertStatus.DISPATCHING)
            .exists()
        )
        address = (
            select(ContactPoint.address)
            .where(
                ContactPoint.id == _table.c.contact_point_id,
                ContactPoint.disabled_at.is_(None),
                ContactPoint.unsubscribed_at.is_(None),
            )
            .scalar_subquery()
        )
        result = self.session.connection().execute(
            statement.where(
                _table.c.alert_id == alert_id,
                _table.c.batch_no == batch_no,
                or_(_table.c.next_attempt_at.is_(None), _table.c.next_attempt_at <= moment),
                dispatching,
            )
            .values(status=target, attempts=_table.c.attempts + 1, claimed_at=moment)
            .returning(
                _table.c.id,
                _table.c.contact_point_id,
                _table.c.channel,
                _table.c.language,
                _table.c.attempts,
                address,
            )
        )
        won = sorted(
            ClaimedRow(int(a), int(b), str(c), str(d), int(e), f) for a, b, c, d, e, f in result
        )
        self._count(Counter((alert_id, row.channel) for row in won), D.PENDING, target)
        return won

    def release_stale(self, *, alert_id: int, batch_no: int, claimed_before: datetime) -> int:
        """sending -> pending for rows whose worker died holding them (lease expired)."""
        statement, target = self._guarded(DeliveryEvent.RELEASE, D.SENDING)
        return self._run(
            statement.where(
                _table.c.alert_id == alert_id,
                _table.c.batch_no == batch_no,
                _table.c.claimed_at < claimed_before,
            ).values(status=target, next_attempt_at=None),
            D.SENDING,
            target,
        )

    def withdraw(
        self,
        *,
        reason: SuppressReason,
        alert_id: int,
        delivery_ids: Sequence[int] | None = None,
        batch_no: int | None = None,
        claimed_before: datetime | None = None,
        now: datetime | None = None,
    ) -> int:
        """sending -> suppressed: claimed rows that will not go out because their alert
        ended (the ids a worker held back, or a dead worker's rows of one batch)."""
        statement, target = self._guarded(DeliveryEvent.WITHDRAW, D.SENDING)
        statement = statement.where(_table.c.alert_id == alert_id)
        if delivery_ids is not None:
            if not delivery_ids:
                return 0
            statement = statement.where(_table.c.id.in_(delivery_ids))
        if batch_no is not None:
            statement = statement.where(_table.c.batch_no == batch_no)
        if claimed_before is not None:
            statement = statement.where(_table.c.claimed_at < claimed_before)
        return self._run(
            statement.values(status=target, reason=reason.value, finished_at=now or utcnow()),
            D.SENDING,
            target,
        )

    def record_sent(self, changes: Iterable[DeliveryChange], *, now: datetime | None = None) -> int:
        rows = [{"b_id": o.delivery_id, "b_provider_id": o.provider_id} for o in changes]
        return self._per_row(
            DeliveryEvent.SENT,
            rows,
            provider_id=bindparam("b_provider_id"),
            sent_at=now or utcnow(),
            error_code=None,
        )

    def record_temporary_failure(
        self, changes: Iterable[DeliveryChange], *, retry_at: datetime
    ) -> int:
        """Back to pending, to be claimed again no earlier than `retry_at`."""
        rows = [{"b_id": o.delivery_id, "b_error_code": o.error_code} for o in changes]
        return self._per_row(
            DeliveryEvent.TEMPORARY_FAILURE,
            rows,
            error_code=bindparam("b_error_code"),
            next_attempt_at=retry_at,
        )

    def record_permanent_failure(
        self, changes: Iterable[DeliveryChange], *, now: datetime | None = None
    ) -> int:
        """Final: a provider's permanent refusal, or a temporary one past the deadline."""
        rows = [{"b_id": o.delivery_id, "b_error_code": o.error_code} for o in changes]
        return self._per_row(
            DeliveryEvent.PERMANENT_FAILURE,
            rows,
            error_code=bindparam("b_error_code"),
            finished_at=now or utcnow(),
        )

    def suppress(
        self,
        *,
        reason: SuppressReason,
        alert_id: int | None = None,
        delivery_ids: Sequence[int] | None = None,
        contact_point_ids: Sequence[int] | None = None,
        now: datetime | None = None,
    ) -> int:
        """pending -> suppressed: a whole alert (cancel, expiry), some rows, or everything
        still waiting for some contact points (an erased resident)."""
        chosen = [c for c in (alert_id, delivery_ids, contact_point_ids) if c is not None]
        if len(chosen) != 1:
            raise ValueError("suppress takes one of alert_id, delivery_ids, contact_point_ids")
        statement, target = self._guarded(DeliveryEvent.SUPPRESS, D.PENDING)
        if alert_id is not None:
            statement = statement.where(_table.c.alert_id == alert_id)
        elif delivery_ids is not None:
            if not delivery_ids:
                return 0
            statement = statement.where(_table.c.id.in_(delivery_ids))
        else:
            if not contact_point_ids:
                return 0
            statement = statement.where(_table.c.contact_point_id.in_(contact_point_ids))
        return self._run(
            statement.values(status=target, reason=reason.value, finished_at=now or utcnow()),
            D.PENDING,
            target,
        )

    def record_receipts(
        self,
        *,
        delivered: Iterable[DeliveryChange] = (),
        undelivered: Iterable[DeliveryChange] = (),
        now: datetime | None = None,
    ) -> int:
        """Provider receipts: -> delivered, or -> failed with the provider's code.

        A receipt names the provider's message id; it is kept when the row has none yet (the
        report overtook the worker recording the send, or the send was found already done).
        """
        moment = now or utcnow()
        provider_id = func.coalesce(_table.c.provider_id, bindparam("b_provider_id"))
        rows = [{"b_id": o.delivery_id, "b_provider_id": o.provider_id} for o in delivered]
        failed = [
            {"b_id": o.delivery_id, "b_error_code": o.error_code, "b_provider_id": o.provider_id}
            for o in undelivered
        ]
        with self.counted_once():
            moved = self._per_row(
                DeliveryEvent.DELIVERED, rows, finished_at=moment, provider_id=provider_id
            )
            moved += self._per_row(
                DeliveryEvent.UNDELIVERED,
                failed,
                error_code=bindparam("b_error_code"),
                finished_at=moment,
                provider_id=provider_id,
            )
        return moved
