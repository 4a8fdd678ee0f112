"""One-time codes that prove a resident holds a contact point.

Only a keyed hash of each code is stored (HMAC with the secret key: a six-digit code
hashed without a key would fall to a million guesses against a stolen table). A code
expires, and locks after a few wrong tries; asking for a new code retires the old ones.

Checking returns an outcome instead of raising, because a wrong try must be counted and
committed: an exception would roll the count back and allow unlimited guesses.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta
from enum import StrEnum

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from broadcaster.audit import trail as audit
from broadcaster.db.engine import utcnow
from broadcaster.errors import RateLimited
from broadcaster.settings import Settings
from subscribers.models import ContactPoint, VerificationCode

CODE_DIGITS = 6


class CodeCheck(StrEnum):
    VERIFIED = "verified"
    WRONG = "wrong"
    EXPIRED = "expired"
    LOCKED = "locked"
    NO_CODE = "no_code"


def _code_hash(secret_key: str, contact_point_id: int, code: str) -> str:
    message = f"{contact_point_id}:{code}".encode()
    return hmac.new(secret_key.encode(), message, hashlib.sha256).hexdigest()


def issue_code(*, session: Session, settings: Settings, contact_point: ContactPoint) -> str:
    """Create a fresh code for `contact_point` and return it (to be sent, never stored).

    A contact point gets at most `verification_codes_per_hour` codes an hour: a new code
    also restarts the count of wrong tries, so without this cap the lockout would only
    cost a guesser one more request.
    """
    now = utcnow()
    recent = session.scalar(
        select(func.count())
        .select_from(VerificationCode)
        .where(
            VerificationCode.contact_point_id == contact_point.id,
            VerificationCode.created_at > now - timedelta(hours=1),
        )
    )
    if (recent or 0) >= settings.verification_codes_per_hour:
        raise RateLimited("too many codes were sent to this contact point; try again later", 3600)
    session.execute(
        update(VerificationCode)
        .where(
            VerificationCode.contact_point_id == contact_point.id,
            VerificationCode.used_at.is_(None),
            VerificationCode.locked_at.is_(None),
        )
        .values(used_at=now)
    )
    code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
    session.add(
        VerificationCode(
            contact_point_id=contact_point.id,
            code_hash=_code_hash(settings.secret_key, contact_point.id, code),
            created_at=now,
            expires_at=now + timedelta(seconds=settings.verification_code_ttl_seconds),
        )
    )
    session.flush()
    audit.record(
        session=session,
        actor=f"subscriber:{contact_point.subscriber_id}",
        action="contact.code_issued",
        object_type="contact_point",
        object_id=contact_point.id,
        payload={"channel": contact_point.channel},
    )
    return code


def check_code(
    *,
    session: Session,
    settings: Settings,
    contact_point: ContactPoint,
    code: str,
    from_signed_link: bool = False,
) -> CodeCheck:
    """Try `code` against the contact point's live code; the caller commits either way.

    The try is counted before the code is compared, in one guarded UPDATE that also
    refuses a locked, used or exhausted code: however many guesses race each other, no
    more than `verification_max_attempts` are ever compared. A code `from_signed_link`
    was issued by us: one that is not the live code is a link a newer one replaced, not
    a guess, and is refused as expired without counting against the live code.
    """
    now = utcnow()
    current = session.scalars(
        select(VerificationCode)
        .where(
            VerificationCode.contact_point_id == contact_point.id,
            VerificationCode.used_at.is_(None),
        )
        .order_by(VerificationCode.id.desc())
        .limit(1)
    ).first()
    if current is None:
        return CodeCheck.NO_CODE
    if current.locked_at is not None:
        return CodeCheck.LOCKED
    if current.expires_at <= now:
        return CodeCheck.EXPIRED
    expected = _code_hash(settings.secret_key, contact_point.id, str(code).strip())
    if from_signed_link and not hmac.compare_digest(expected, current.code_hash):
        return CodeCheck.EXPIRED
    counted = session.execute(
        update(VerificationCode)
        .where(
            VerificationCode.id == current.id,
            VerificationCode.used_at.is_(None),
            VerificationCode.locked_at.is_(None),
            VerificationCode.attempts < settings.verification_max_attempts,
        )
        .values(attempts=VerificationCode.attempts + 1)
        .returning(VerificationCode.attempts)
        .execution_options(synchronize_session=False)
    ).scalar()
    session.refresh(current)
    if counted is None:
        return CodeCheck.NO_CODE if current.used_at is not None else CodeCheck.LOCKED
    actor = f"subscriber:{contact_point.subscriber_id}"
    if not hmac.compare_digest(expected, current.code_hash):
        locked = counted >= settings.verification_max_attempts
        if locked:
            current.locked_at = now
        session.flush()
        audit.record(
            session=session,
            actor=actor,
            action="contact.code_wrong",
            object_type="contact_point",
            object_id=contact_point.id,
            payload={"attempts": counted, "locked": locked},
        )
        return CodeCheck.LOCKED if locked else CodeCheck.WRONG
    used = session.execute(
        update(VerificationCode)
        .where(VerificationCode.id == current.id, VerificationCode.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if used.rowcount != 1:  # type: ignore[attr-defined]
        return CodeCheck.NO_CODE  # a racing try used it first
    if contact_point.verified_at is None:
        contact_point.verified_at = now
    session.flush()
    audit.record(
        session=session,
        actor=actor,
        action="contact.verified",
        object_type="contact_point",
        object_id=contact_point.id,
        payload={"channel": contact_point.channel},
    )
    return CodeCheck.VERIFIED
