"""Tables of the broadcaster domain: reference data, staff, alerts, deliveries, audit.

The delivery table is the one that grows to millions of rows: it carries a foreign key to
its alert only. Contact points and subscribers are never deleted (erasure empties them and
keeps the pseudonymous row), so the references hold by construction, and a COPY of a
million rows does not pay a per-row check for each of them.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Enum,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from broadcaster.db import Base, UTCDateTime, utcnow

# SQLite only auto-increments an INTEGER PRIMARY KEY (the rowid), not a BIGINT one.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def _values(enum: type[StrEnum]) -> str:
    return ", ".join(f"'{member.value}'" for member in enum)


def enum_column(enum: type[StrEnum], length: int) -> Enum:
    """A VARCHAR holding the enum's values, read back as members; the CHECK constraints
    are declared on each table by name."""
    return Enum(
        enum,
        native_enum=False,
        create_constraint=False,
        length=length,
        values_callable=lambda kind: [member.value for member in kind],
    )


class Role(StrEnum):
    OPERATOR = "operator"
    APPROVER = "approver"
    AUDITOR = "auditor"
    ADMIN = "admin"


class AlertStatus(StrEnum):
    DRAFT = "draft"
    AWAITING_APPROVAL = "awaiting_approval"
    APPROVED = "approved"
    DISPATCHING = "dispatching"
    DONE = "done"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class Severity(StrEnum):
    """CAP 1.2 <severity>."""

    EXTREME = "Extreme"
    SEVERE = "Severe"
    MODERATE = "Moderate"
    MINOR = "Minor"
    UNKNOWN = "Unknown"


class Urgency(StrEnum):
    """CAP 1.2 <urgency>."""

    IMMEDIATE = "Immediate"
    EXPECTED = "Expected"
    FUTURE = "Future"
    PAST = "Past"
    UNKNOWN = "Unknown"


class CapStatus(StrEnum):
    """CAP 1.2 <status> as far as a sent alert goes: a real one, or a drill that only
    reaches the test audience."""

    ACTUAL = "Actual"
    EXERCISE = "Exercise"
    TEST = "Test"


class MsgType(StrEnum):
    """CAP 1.2 msgType: an alert, or an Update / Cancel of one already sent, which goes
    to exactly the people who received the original."""

    ALERT = "alert"
    UPDATE = "update"
    CANCEL = "cancel"


class Language(StrEnum):
    PL = "pl"
    EN = "en"
    UK = "uk"


FALLBACK_LANGUAGE = Language.PL


class DeliveryStatus(StrEnum):
    """The states of one message; DeliveryStateMachine owns every move between them."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"
    SUPPRESSED = "suppressed"


class District(Base):
    __tablename__ = "districts"

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    slug: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(64))
    residents: Mapped[int] = mapped_column(Integer)


class Topic(Base):
    __tablename__ = "topics"

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    slug: Mapped[str] = mapped_column(String(32), unique=True)
    name_pl: Mapped[str] = mapped_column(String(80))
    name_en: Mapped[str] = mapped_column(String(80))
    name_uk: Mapped[str] = mapped_column(String(80))


class Operator(Base):
    """A member of staff: writes, approves or audits alerts, or administers the system."""

    __tablename__ = "operators"
    __table_args__ = (CheckConstraint(f"role IN ({_values(Role)})", name="role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(120))
    role: Mapped[Role] = mapped_column(enum_column(Role, 16))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ApiToken(Base):
    """A staff member's API token. Only its SHA-256 is kept: the token itself is shown
    once, when issued. It expires, and can be revoked before that."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SessionEnd(StrEnum):
    """Why a console session ended."""

    SIGNED_OUT = "signed_out"
    SIGNED_IN_AGAIN = "signed_in_again"
    IDLE = "idle"
    EXPIRED = "expired"
    # The token it was opened with was revoked or expired, or its account deactivated.
    TOKEN_ENDED = "token_ended"  # noqa: S105 - a reason, not a secret


class ConsoleSession(Base):
    """A staff member signed in to the web console with one of their tokens. The browser
    holds a random secret of its own; only its SHA-256 is kept, as for tokens, so neither
    the cookie nor the database gives anyone the token. Ended for good by signing out,
    by idling, by its age, or with the token or account it stands on."""

    __tablename__ = "console_sessions"
    __table_args__ = (CheckConstraint(f"end_reason IN ({_values(SessionEnd)})", name="end_reason"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id"), index=True)
    token_id: Mapped[int] = mapped_column(ForeignKey("api_tokens.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    end_reason: Mapped[SessionEnd | None] = mapped_column(enum_column(SessionEnd, 16))


class IdempotencyKey(Base):
    """An `Idempotency-Key` an operator sent with a create: the same key again returns the
    alert it made, and the same key with another body is refused."""

    __tablename__ = "idempotency_keys"

    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Alert(Base):
    __tablename__ = "alerts"
    __table_args__ = (
        CheckConstraint(f"status IN ({_values(AlertStatus)})", name="status"),
        CheckConstraint(f"severity IN ({_values(Severity)})", name="severity"),
        CheckConstraint(f"urgency IN ({_values(Urgency)})", name="urgency"),
        CheckConstraint(f"cap_status IN ({_values(CapStatus)})", name="cap_status"),
        CheckConstraint(f"msg_type IN ({_values(MsgType)})", name="msg_type"),
        CheckConstraint("send_at IS NULL OR send_at < expires_at", name="schedule"),
        CheckConstraint(
            "(msg_type = 'alert') = (references_id IS NULL)", name="follow_up_references"
        ),
        Index("ix_alerts_status_send_at", "status", "send_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[AlertStatus] = mapped_column(
        enum_column(AlertStatus, 20), default=AlertStatus.DRAFT
    )
    author_id: Mapped[int] = mapped_column(ForeignKey("operators.id"))
    topic_id: Mapped[int] = mapped_column(ForeignKey("topics.id"))
    whole_city: Mapped[bool] = mapped_column(Boolean, default=False)
    severity: Mapped[Severity] = mapped_column(enum_column(Severity, 10))
    urgency: Mapped[Urgency] = mapped_column(enum_column(Urgency, 10))
    cap_status: Mapped[CapStatus] = mapped_column(
        enum_column(CapStatus, 10), default=CapStatus.ACTUAL
    )
    msg_type: Mapped[MsgType] = mapped_column(enum_column(MsgType, 8), default=MsgType.ALERT)
    # The alert an Update or Cancel follows up (CAP `references`).
    references_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id"), index=True)
    channels: Mapped[list[str]] = mapped_column(JSON)
    # Send SMS with Polish and Ukrainian letters spelt in GSM-7 (cheaper, longer parts).
    transliterate_sms: Mapped[bool] = mapped_column(Boolean, default=False)
    send_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    submitted_by_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"))
    # Everyone who wrote any of the text (the author first): none of them may approve it.
    editor_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    approver_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"))
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancelled_by_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"))
    status_reason: Mapped[str | None] = mapped_column(Text)

    topic: Mapped[Topic] = relationship(lazy="joined")
    contents: Mapped[list[AlertContent]] = relationship(
        cascade="all, delete-orphan", order_by="AlertContent.language"
    )
    districts: Mapped[list[District]] = relationship(
        secondary="alert_districts", order_by="District.id"
    )

    def content_for(self, language: str) -> AlertContent:
        """The text in `language`, or in Polish when the alert has no such translation."""
        by_language = {content.language: content for content in self.contents}
        return by_language.get(language) or by_language[FALLBACK_LANGUAGE]


class AlertContent(Base):
    __tablename__ = "alert_contents"
    __table_args__ = (CheckConstraint(f"language IN ({_values(Language)})", name="language"),)

    alert_id: Mapped[int] = mapped_column(
        ForeignKey("alerts.id", ondelete="CASCADE"), primary_key=True
    )
    language: Mapped[str] = mapped_column(String(2), primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)


class AlertDistrict(Base):
    __tablename__ = "alert_districts"

    alert_id: Mapped[int] = mapped_column(
        ForeignKey("alerts.id", ondelete="CASCADE"), primary_key=True
    )
    district_id: Mapped[int] = mapped_column(ForeignKey("districts.id"), primary_key=True)


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
        CheckConstraint(f"status IN ({_values(DeliveryStatus)})", name="status"),
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
        CheckConstraint(f"state IN ({_values(BatchState)})", name="state"),
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


class AuditEvent(Base):
    """One record of the append-only, hash-chained audit trail.

    `payload` is the canonical JSON text that was hashed, kept byte for byte (a JSON
    column could reorder keys). It never holds personal data: people appear by id only.
    """

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, unique=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    object_type: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[str] = mapped_column(String(64))
    payload: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "occurred_at": self.occurred_at.isoformat(),
            "actor": self.actor,
            "action": self.action,
            "object_type": self.object_type,
            "object_id": self.object_id,
            "payload": self.payload,
            "hash": self.hash,
        }


class AuditHead(Base):
    """The single row that holds the chain's tip; updating it serialises appenders. The
    seal is an HMAC over (seq, hash) under the audit key: the tip cannot be moved without it."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))
    seal: Mapped[str] = mapped_column(String(64))
