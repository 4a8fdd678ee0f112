"""Tables of residents: subscribers, their contact points, codes and subscriptions.

Personal data lives only here (addresses in `contact_points.address`, and for a moment in
`pending_requests`); everything else in the system refers to people by id, and so does
every task message, so erasure empties these rows and nothing else.
"""

from __future__ import annotations

from datetime import datetime, time
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    SmallInteger,
    String,
    Time,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from broadcaster.db.engine import Base, UTCDateTime, utcnow
from channels import Channel

CHANNEL_VALUES = ", ".join(f"'{channel.value}'" for channel in Channel)


class Subscriber(Base):
    __tablename__ = "subscribers"
    __table_args__ = (CheckConstraint("language IN ('pl', 'en', 'uk')", name="language"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    language: Mapped[str] = mapped_column(String(2), default="pl")
    # Local (Europe/Warsaw) wall-clock times; a window may run over midnight (22:00-07:00).
    quiet_from: Mapped[time | None] = mapped_column(Time)
    quiet_until: Mapped[time | None] = mapped_column(Time)
    # Exercise and test alerts reach only subscribers who volunteered for them.
    test_audience: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    contact_points: Mapped[list[ContactPoint]] = relationship(
        back_populates="subscriber", order_by="ContactPoint.id"
    )
    subscriptions: Mapped[list[Subscription]] = relationship(
        cascade="all, delete-orphan",
        order_by="(Subscription.topic_id, Subscription.district_id)",
    )


class ContactPoint(Base):
    """A phone number (SMS), a device token (push) or an e-mail address.

    It reaches its subscriber only while verified, wanted, not unsubscribed and not
    disabled (a dead push token, an address that keeps bouncing).
    """

    __tablename__ = "contact_points"
    __table_args__ = (
        UniqueConstraint("channel", "address"),
        CheckConstraint(f"channel IN ({CHANNEL_VALUES})", name="channel"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id"), index=True)
    channel: Mapped[str] = mapped_column(String(8))
    # NULL once erased: the row stays so that delivery history keeps its reference.
    address: Mapped[str | None] = mapped_column(String(512))
    wanted: Mapped[bool] = mapped_column(Boolean, default=True)
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    disabled_reason: Mapped[str | None] = mapped_column(String(64))
    # Hard refusals (5xx) of e-mail in a row; the address is disabled at a threshold.
    bounces: Mapped[int] = mapped_column(SmallInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    subscriber: Mapped[Subscriber] = relationship(back_populates="contact_points")

    @property
    def reachable(self) -> bool:
        return (
            self.address is not None
            and self.wanted
            and self.verified_at is not None
            and self.unsubscribed_at is None
            and self.disabled_at is None
        )


class VerificationCode(Base):
    """A one-time code sent to a contact point; only its keyed hash is stored."""

    __tablename__ = "verification_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_point_id: Mapped[int] = mapped_column(ForeignKey("contact_points.id"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(SmallInteger, default=0)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    locked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Subscription(Base):
    """A subscriber wants alerts of one topic for one district."""

    __tablename__ = "subscriptions"
    __table_args__ = (
        # Targeting looks up (topic, districts) and needs only the subscriber id back.
        Index("ix_subscriptions_topic_district", "topic_id", "district_id", "subscriber_id"),
    )

    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id"), primary_key=True)
    topic_id: Mapped[int] = mapped_column(ForeignKey("topics.id"), primary_key=True)
    district_id: Mapped[int] = mapped_column(ForeignKey("districts.id"), primary_key=True)


class PendingKind(StrEnum):
    SIGN_UP = "sign_up"
    REMINDER = "reminder"
    NOTICE = "notice"


PENDING_KIND_VALUES = ", ".join(f"'{kind.value}'" for kind in PendingKind)


class PendingRequest(Base):
    """Work for a worker that involves a resident's address or a secret: a sign-up or a
    reminder the API accepted, a code or link to send. The task message carries only the
    id; the worker deletes the row in the transaction that does the work (a notice's row,
    once it is sent), so a message the broker delivers twice finds nothing to do.

    A sign-up or reminder names its addresses in `payload["contacts"]` as [channel,
    address] pairs, so that erasing a resident finds it; a notice names its contact
    point, whose address it is sent to, and holds its code (never its address).
    """

    __tablename__ = "pending_requests"
    __table_args__ = (CheckConstraint(f"kind IN ({PENDING_KIND_VALUES})", name="kind"),)

    # Random, not counted (see `subscribers.pending.new_request_id`): a notice's id is
    # also its SMSAPI idx and e-mail Message-ID.
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(16))
    contact_point_id: Mapped[int | None] = mapped_column(
        ForeignKey("contact_points.id"), index=True
    )
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
