"""Dispatch tables: one delivery per (alert, contact point), the outbox of
batches, and the counters.

The delivery table is the one that grows to millions of rows: it carries a foreign key to
its alert only. Contact points and subscribers are never deleted (erasure empties them and
keeps the pseudonymous row), so the references hold by construction, and a COPY of a
million rows does not pay a per-row check for each of them.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from broadcaster.db.columns import BigId, enum_column, sql_values
from broadcaster.db.engine import Base, UTCDateTime, utcnow


class DeliveryStatus(StrEnum):
    """The states of one message; DeliveryStateMachine owns every move between them."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"
    SUPPRESSED = "suppressed"


class Delivery(Base):
    """One message of one alert to one contact point; its status follows DeliveryStateMachine."""

    __tablename__ = "deliveries"
    __table_args__ = (
        # Contact point first: it also serves a resident's own delivery history.
        UniqueConstraint("contact_point_id", "alert_id"),
        # Batches are claimed by (alert, batch); neither column ever changes, and no index
        # covers the columns that do (status, times, codes), so the updates of a send stay
        # on their page (HOT) instead of rewriting indexes - given room on the page, which
        # migration 0003 leaves (fillfactor 50 on PostgreSQL).
        Index("ix_deliveries_alert_id_batch_no", "alert_id", "batch_no"),
        # The auditors' log pages one alert in id order (`alert_id = :a AND id > :after
        # ORDER BY id LIMIT n`, delivery_log): without this index PostgreSQL walks the
        # primary key past every delivery written before the alert's (migration 0006,
        # benchmarks/delivery_log.py). Not (alert_id, status, id) for the status filter:
        # status changes on every send, which would then no longer be HOT.
        Index("ix_deliveries_alert_id_id", "alert_id", "id"),
        CheckConstraint(f"status IN ({sql_values(DeliveryStatus)})", name="status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # No foreign key: the planner writes a million of these in one statement, for the
    # alert it has just locked, and alerts are never deleted (migration 0003).
    alert_id: Mapped[int] = mapped_column(Integer)
    batch_no: Mapped[int] = mapped_column(Integer, default=0)
    subscriber_id: Mapped[int] = mapped_column(Integer)
    contact_point_id: Mapped[int] = mapped_column(Integer)
    channel: Mapped[str] = mapped_column(String(8))
    language: Mapped[str] = mapped_column(String(2))
    status: Mapped[DeliveryStatus] = mapped_column(
        enum_column(DeliveryStatus, 10), default=DeliveryStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(SmallInteger, default=0)
    provider_id: Mapped[str | None] = mapped_column(String(64))
    error_code: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class BatchState(StrEnum):
    QUEUED = "queued"
    DONE = "done"


class DispatchBatch(Base):
    """Up to a few hundred deliveries of one alert and channel, sent by one task.

    Written with its deliveries in the planning transaction, it is also the outbox: a
    batch still queued whose task was never published (a crash right after the commit)
    or whose worker died is found and enqueued again by the sweeper.
    """

    __tablename__ = "dispatch_batches"
    __table_args__ = (
        CheckConstraint(f"state IN ({sql_values(BatchState)})", name="state"),
        Index("ix_dispatch_batches_state_next_run_at", "state", "next_run_at"),
    )

    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id"), primary_key=True)
    batch_no: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    channel: Mapped[str] = mapped_column(String(8))
    size: Mapped[int] = mapped_column(Integer)
    state: Mapped[BatchState] = mapped_column(enum_column(BatchState, 8), default=BatchState.QUEUED)
    next_run_at: Mapped[datetime] = mapped_column(UTCDateTime)
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    runs: Mapped[int] = mapped_column(Integer, default=0)


class AlertProgress(Base):
    """How many of an alert's deliveries are in each status, per channel; moved by the
    same transactions that move the deliveries, so reading progress never scans them."""

    __tablename__ = "alert_progress"

    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id"), primary_key=True)
    channel: Mapped[str] = mapped_column(String(8), primary_key=True)
    status: Mapped[str] = mapped_column(String(10), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, default=0)


class ReceiptTally(Base):
    """Delivery reports by provider and what became of them (applied, unknown, stale)."""

    __tablename__ = "receipt_tallies"

    provider: Mapped[str] = mapped_column(String(16), primary_key=True)
    outcome: Mapped[str] = mapped_column(String(16), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, default=0)
