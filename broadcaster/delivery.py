"""The delivery state machine: the one place where a delivery's status changes.

    pending --claim--> sending --sent--> sent --delivered--> delivered
       |                  |  \\--temporary failure--> pending (attempt counted, backoff)
       |                  \\--permanent failure / deadline--> failed
       \\--suppress (cancelled, expired, opted out, quiet hours)--> suppressed
    sent --undelivered (receipt: undelivered, bounced, token dead)--> failed

Every move is a bulk, guarded UPDATE (`WHERE status = <expected>`): a batch that Celery
delivers twice finds its rows already claimed and sends nothing, and a late receipt cannot
resurrect a delivery that ended otherwise. Each method returns how many rows moved, so the
caller can tell a duplicate from real work.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, cast

from sqlalchemy import Table, Update, bindparam, or_, update
from sqlalchemy.orm import Session

from broadcaster.db import utcnow
from broadcaster.models import Delivery, DeliveryStatus

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


class SuppressReason(StrEnum):
    """Why a message was never sent; stored and counted, never a silent drop."""

    CANCELLED = "cancelled"
    EXPIRED = "expired"
    OPTED_OUT = "opted_out"
    QUIET_HOURS = "quiet_hours"
    UNVERIFIED = "unverified"


class InvalidTransition(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one message at the provider."""

    delivery_id: int
    provider_id: str | None = None
    error_code: str | None = None


class DeliveryStateMachine:
    """Owns every transition of Delivery.status, as bulk guarded updates in `session`."""

    TRANSITIONS: ClassVar[dict[DeliveryEvent, tuple[DeliveryStatus, DeliveryStatus]]] = {
        DeliveryEvent.CLAIM: (D.PENDING, D.SENDING),
        DeliveryEvent.SENT: (D.SENDING, D.SENT),
        DeliveryEvent.TEMPORARY_FAILURE: (D.SENDING, D.PENDING),
        DeliveryEvent.PERMANENT_FAILURE: (D.SENDING, D.FAILED),
        DeliveryEvent.SUPPRESS: (D.PENDING, D.SUPPRESSED),
        DeliveryEvent.DELIVERED: (D.SENT, D.DELIVERED),
        DeliveryEvent.UNDELIVERED: (D.SENT, D.FAILED),
    }
    FINAL: ClassVar[frozenset[DeliveryStatus]] = frozenset({D.DELIVERED, D.FAILED, D.SUPPRESSED})

    def __init__(self, session: Session) -> None:
        self.session = session

    @classmethod
    def next_status(cls, current: DeliveryStatus, event: DeliveryEvent) -> DeliveryStatus:
        """The status `event` leads to from `current`; InvalidTransition if it may not."""
        source, target = cls.TRANSITIONS[event]
        if current is not source:
            raise InvalidTransition(f"{event.value} is not allowed from {current.value}")
        return target

    def _guarded(self, event: DeliveryEvent) -> tuple[Update, DeliveryStatus]:
        source, target = self.TRANSITIONS[event]
        return update(_table).where(_table.c.status == source), target

    def _per_row(self, event: DeliveryEvent, rows: list[dict[str, Any]], **values: Any) -> int:
        if not rows:
            return 0
        statement, target = self._guarded(event)
        statement = statement.where(_table.c.id == bindparam("b_id")).values(
            status=target, **values
        )
        result = self.session.connection().execute(statement, rows)
        return int(result.rowcount)

    def claim(self, delivery_ids: Sequence[int], *, now: datetime | None = None) -> list[int]:
        """pending -> sending for those of `delivery_ids` that are due; returns the ids won.

        A row not returned was claimed by someone else, already ended, or waits for a
        retry time still in the future.
        """
        if not delivery_ids:
            return []
        moment = now or utcnow()
        statement, target = self._guarded(DeliveryEvent.CLAIM)
        result = self.session.connection().execute(
            statement.where(
                _table.c.id.in_(delivery_ids),
                or_(_table.c.next_attempt_at.is_(None), _table.c.next_attempt_at <= moment),
            )
            .values(status=target, attempts=_table.c.attempts + 1)
            .returning(_table.c.id)
        )
        return sorted(result.scalars())

    def record_sent(self, outcomes: Iterable[Outcome], *, now: datetime | None = None) -> int:
        rows = [{"b_id": o.delivery_id, "b_provider_id": o.provider_id} for o in outcomes]
        return self._per_row(
            DeliveryEvent.SENT,
            rows,
            provider_id=bindparam("b_provider_id"),
            sent_at=now or utcnow(),
            error_code=None,
        )

    def record_temporary_failure(self, outcomes: Iterable[Outcome], *, retry_at: datetime) -> int:
        """Back to pending, to be claimed again no earlier than `retry_at`."""
        rows = [{"b_id": o.delivery_id, "b_error_code": o.error_code} for o in outcomes]
        return self._per_row(
            DeliveryEvent.TEMPORARY_FAILURE,
            rows,
            error_code=bindparam("b_error_code"),
            next_attempt_at=retry_at,
        )

    def record_permanent_failure(
        self, outcomes: Iterable[Outcome], *, now: datetime | None = None
    ) -> int:
        """Final: a provider's permanent refusal, or a temporary one past the deadline."""
        rows = [{"b_id": o.delivery_id, "b_error_code": o.error_code} for o in outcomes]
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
        now: datetime | None = None,
    ) -> int:
        """pending -> suppressed, for a whole alert (cancel, expiry) or for some rows."""
        if (alert_id is None) == (delivery_ids is None):
            raise ValueError("suppress takes either alert_id or delivery_ids")
        statement, target = self._guarded(DeliveryEvent.SUPPRESS)
        if alert_id is not None:
            statement = statement.where(_table.c.alert_id == alert_id)
        else:
            if not delivery_ids:
                return 0
            statement = statement.where(_table.c.id.in_(delivery_ids))
        result = self.session.connection().execute(
            statement.values(status=target, reason=reason.value, finished_at=now or utcnow())
        )
        return int(result.rowcount)

    def record_receipts(
        self,
        *,
        delivered: Iterable[int] = (),
        undelivered: Iterable[Outcome] = (),
        now: datetime | None = None,
    ) -> int:
        """Provider receipts: sent -> delivered, or sent -> failed with the provider's code."""
        moment = now or utcnow()
        ids = list(delivered)
        moved = 0
        if ids:
            statement, target = self._guarded(DeliveryEvent.DELIVERED)
            moved += int(
                self.session.connection()
                .execute(
                    statement.where(_table.c.id.in_(ids)).values(status=target, finished_at=moment)
                )
                .rowcount
            )
        rows = [{"b_id": o.delivery_id, "b_error_code": o.error_code} for o in undelivered]
        moved += self._per_row(
            DeliveryEvent.UNDELIVERED,
            rows,
            error_code=bindparam("b_error_code"),
            finished_at=moment,
        )
        return moved
