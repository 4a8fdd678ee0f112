"""The staff console's sessions: opened by signing in with a personal token, held by the
browser as a random secret of their own, checked on every request, and ended for good.

The cookie carries only the session's secret (32 random bytes), never the token; the
database keeps the secret's SHA-256, as it does for tokens. A session ends when its owner
signs out or signs in again, after `console_idle_seconds` without a request, after
`console_session_seconds` in any case, and as soon as the token it was opened with stops
letting its owner in (revoked, expired, or the account deactivated: `tokens.usable`). An
ended session never comes back, so a cookie copied before sign-out is worth nothing.

`last_seen_at` is written at most once a minute (TOUCH_EVERY), not on every page: the
idle limit counts from it, so a session may lapse up to a minute before the limit
counted to the second would end it.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from broadcaster.audit import trail as audit
from broadcaster.db.engine import utcnow
from broadcaster.settings import Settings
from broadcaster.staff import tokens
from broadcaster.staff.models import ApiToken, ConsoleSession, Operator, SessionEnd
from broadcaster.staff.operators import actor_of

TOUCH_EVERY = timedelta(minutes=1)
MAX_SECRET_LENGTH = 128


@dataclass(frozen=True, slots=True)
class Opened:
    id: int
    secret: str  # for the browser's cookie, never stored


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def open_session(
    *,
    session: Session,
    presented_token: str,
    replacing: str | None,
    now: datetime | None = None,
) -> Opened:
    """Sign in: a new session for the owner of the valid token presented (Unauthenticated
    otherwise), with a secret made here. Whatever the browser held before (`replacing`)
    is never reused, so a value planted in the browser cannot become the session; if it
    was a live session, it ends: one browser, one session."""
    moment = now or utcnow()
    token, operator = tokens.authenticate_token(
        session=session, presented=presented_token, now=moment
    )
    if replacing:
        _end(session, replacing, SessionEnd.SIGNED_IN_AGAIN, moment)
    secret = secrets.token_urlsafe(32)
    row = ConsoleSession(
        secret_hash=secret_hash(secret),
        operator_id=operator.id,
        token_id=token.id,
        created_at=moment,
        last_seen_at=moment,
    )
    session.add(row)
    session.flush()
    audit.record(
        session=session,
        actor=actor_of(operator),
        action="console.signed_in",
        object_type="console_session",
        object_id=row.id,
        payload={"api_token_id": token.id},
    )
    return Opened(row.id, secret)


def resume(
    *, session: Session, secret: str, settings: Settings, now: datetime | None = None
) -> Operator | None:
    """The staff member of the live session whose secret this is; None if there is none.
    A session found past one of its limits is ended here, with the reason, so that it
    stays ended; a live one has its last_seen_at moved on (at most once a minute)."""
    if not secret or len(secret) > MAX_SECRET_LENGTH:
        return None
    found = session.execute(
        select(ConsoleSession, ApiToken, Operator)
        .join(ApiToken, ApiToken.id == ConsoleSession.token_id)
        .join(Operator, Operator.id == ConsoleSession.operator_id)
        .where(ConsoleSession.secret_hash == secret_hash(secret))
    ).one_or_none()
    if found is None:
        return None
    row, token, operator = found
    if row.ended_at is not None:
        return None
    moment = now or utcnow()
    lapsed = _lapsed(row, token, operator, settings, moment)
    if lapsed is not None:
        _end(session, secret, lapsed, moment)
        return None
    if moment - row.last_seen_at >= TOUCH_EVERY:
        row.last_seen_at = moment
    return operator


def close_session(*, session: Session, secret: str, now: datetime | None = None) -> None:
    """Sign out: the session ends for good. An unknown or ended one changes nothing."""
    ended = _end(session, secret, SessionEnd.SIGNED_OUT, now or utcnow())
    if ended is not None:
        session_id, operator_id = ended
        audit.record(
            session=session,
            actor=actor_of(session.get_one(Operator, operator_id)),
            action="console.signed_out",
            object_type="console_session",
            object_id=session_id,
        )


def _lapsed(
    row: ConsoleSession, token: ApiToken, operator: Operator, settings: Settings, moment: datetime
) -> SessionEnd | None:
    if not tokens.usable(token, operator, moment):
        return SessionEnd.TOKEN_ENDED
    if moment - row.created_at >= timedelta(seconds=settings.console_session_seconds):
        return SessionEnd.EXPIRED
    if moment - row.last_seen_at >= timedelta(seconds=settings.console_idle_seconds):
        return SessionEnd.IDLE
    return None


def _end(
    session: Session, secret: str, reason: SessionEnd, moment: datetime
) -> tuple[int, int] | None:
    """End the live session of `secret`: (its id, its operator's id), or None if there was
    none. Guarded by `ended_at IS NULL`, so two requests never end one session twice."""
    if not secret or len(secret) > MAX_SECRET_LENGTH:
        return None
    ended = session.execute(
        update(ConsoleSession)
        .where(ConsoleSession.secret_hash == secret_hash(secret))
        .where(ConsoleSession.ended_at.is_(None))
        .values(ended_at=moment, end_reason=reason)
        .returning(ConsoleSession.id, ConsoleSession.operator_id)
    ).one_or_none()
    return None if ended is None else (ended[0], ended[1])
