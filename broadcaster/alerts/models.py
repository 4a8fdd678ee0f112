"""Alert tables: an alert, its texts per language and its districts."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from broadcaster.db.columns import enum_column, sql_values
from broadcaster.db.engine import Base, UTCDateTime, utcnow
from broadcaster.reference.models import FALLBACK_LANGUAGE, District, Language, Topic


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


# Severe and extreme alerts go first in every queue and ignore residents' quiet hours.
URGENT = frozenset({Severity.EXTREME, Severity.SEVERE})


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
        CheckConstraint(f"status IN ({sql_values(AlertStatus)})", name="status"),
        CheckConstraint(f"severity IN ({sql_values(Severity)})", name="severity"),
        CheckConstraint(f"urgency IN ({sql_values(Urgency)})", name="urgency"),
        CheckConstraint(f"cap_status IN ({sql_values(CapStatus)})", name="cap_status"),
        CheckConstraint(f"msg_type IN ({sql_values(MsgType)})", name="msg_type"),
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
    # Planning streams the audience in chunks, each committed and published on its own
    # (dispatch/planning.py): the alert is dispatching from the first chunk, and planned
    # once the last is written. The planner holds a lease on the alert, renewed by every
    # chunk; `planner_token` fences it, so a planner whose lease was taken over (it
    # stalled, or was thought dead) can write no further chunk.
    planned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    planner_token: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    planner_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
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
    __table_args__ = (CheckConstraint(f"language IN ({sql_values(Language)})", name="language"),)

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
