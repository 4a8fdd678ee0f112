"""Staff tables: operators, their API tokens and console sessions."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from broadcaster.db.columns import enum_column, sql_values
from broadcaster.db.engine import Base, UTCDateTime, utcnow


class Role(StrEnum):
    OPERATOR = "operator"
    APPROVER = "approver"
    AUDITOR = "auditor"
    ADMIN = "admin"


class Operator(Base):
    """A member of staff: writes, approves or audits alerts, or administers the system."""

    __tablename__ = "operators"
    __table_args__ = (CheckConstraint(f"role IN ({sql_values(Role)})", name="role"),)

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
    __table_args__ = (
        CheckConstraint(f"end_reason IN ({sql_values(SessionEnd)})", name="end_reason"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id"), index=True)
    token_id: Mapped[int] = mapped_column(ForeignKey("api_tokens.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    end_reason: Mapped[SessionEnd | None] = mapped_column(enum_column(SessionEnd, 16))
