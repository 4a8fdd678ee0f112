"""Staff API tokens: issued to an account, shown once, kept only as a hash, expiring,
revocable by their owner or an admin.

A token is 32 random bytes (URL-safe, with a `wsp_` prefix that secret scanners can
match). With that much entropy a fast hash is enough: SHA-256 of the token is stored
and looked up, and nothing in the database lets anyone present it. Every way a token can
fail - unknown, expired, revoked, or its account deactivated - gives the same
Unauthenticated error, so probing tells a guesser nothing.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from broadcaster.audit import trail as audit
from broadcaster.db.engine import utcnow
from broadcaster.errors import Forbidden, InvalidInput, NotFound, Unauthenticated
from broadcaster.staff.models import ApiToken, Operator
from broadcaster.staff.operators import actor_of
from broadcaster.staff.permissions import Action, can

PREFIX = "wsp_"
MAX_LIFETIME_DAYS = 365


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Issued:
    id: int
    token: str  # shown once, never stored
    expires_at: datetime


def issue_token(
    *,
    session: Session,
    operator: Operator,
    name: str,
    lifetime_days: int,
    now: datetime | None = None,
) -> Issued:
    """A new token for `operator` (who must be active), valid `lifetime_days` days."""
    name = (name or "").strip()
    if not 1 <= len(name) <= 64:
        raise InvalidInput("name", "must be 1-64 characters")
    if not 1 <= lifetime_days <= MAX_LIFETIME_DAYS:
        raise InvalidInput("lifetime_days", f"must be between 1 and {MAX_LIFETIME_DAYS}")
    if not operator.active:
        raise Forbidden(f"operator {operator.username} is deactivated")
    moment = now or utcnow()
    token = PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        operator_id=operator.id,
        name=name,
        token_hash=token_hash(token),
        created_at=moment,
        expires_at=moment + timedelta(days=lifetime_days),
    )
    session.add(row)
    session.flush()
    audit.record(
        session=session,
        actor=actor_of(operator),
        action="token.issued",
        object_type="api_token",
        object_id=row.id,
        payload={"label": name, "expires_at": row.expires_at.isoformat()},
    )
    return Issued(row.id, token, row.expires_at)


def usable(token: ApiToken, operator: Operator, moment: datetime) -> bool:
    """Whether `token` still lets its owner in at `moment`: not revoked, not expired, and
    its account active. The console's sessions end by the same rule as the token."""
    return token.revoked_at is None and token.expires_at > moment and operator.active


def authenticate_token(
    *, session: Session, presented: str, now: datetime | None = None
) -> tuple[ApiToken, Operator]:
    """The valid token row presented and its active account; Unauthenticated otherwise."""
    if not presented or not presented.startswith(PREFIX) or len(presented) > 128:
        raise Unauthenticated()
    found = session.execute(
        select(ApiToken, Operator)
        .join(Operator, Operator.id == ApiToken.operator_id)
        .where(ApiToken.token_hash == token_hash(presented))
    ).one_or_none()
    if found is None:
        raise Unauthenticated()
    token, operator = found
    if not usable(token, operator, now or utcnow()):
        raise Unauthenticated()
    return token, operator


def authenticate(*, session: Session, presented: str, now: datetime | None = None) -> Operator:
    """The active account whose valid token this is; Unauthenticated otherwise."""
    return authenticate_token(session=session, presented=presented, now=now)[1]


def revoke_token(
    *, session: Session, actor: Operator, token_id: int, now: datetime | None = None
) -> ApiToken:
    """Revoke a token now: its owner or an admin may. Revoking twice changes nothing."""
    token = session.get(ApiToken, token_id)
    if token is None:
        raise NotFound("token", token_id)
    if token.operator_id != actor.id and not can(actor, Action.REVOKE_ANY_TOKEN):
        raise Forbidden("only the token's owner or an admin may revoke it")
    if token.revoked_at is None:
        token.revoked_at = now or utcnow()
        session.flush()
        audit.record(
            session=session,
            actor=actor_of(actor),
            action="token.revoked",
            object_type="api_token",
            object_id=token.id,
            payload={"owner": token.operator_id},
        )
    return token
