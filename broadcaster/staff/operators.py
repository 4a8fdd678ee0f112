"""Staff accounts (who may do what: broadcaster/staff/permissions.py)."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from broadcaster.audit import trail as audit
from broadcaster.errors import InvalidInput, NotFound
from broadcaster.staff.models import Operator, Role
from broadcaster.texts import name_text

DISPLAY_NAME_MAX = 120  # the column's length

_USERNAME = re.compile(r"[a-z][a-z0-9._-]{1,63}")


def actor_of(operator: Operator) -> str:
    return f"operator:{operator.id}"


def create_operator(
    *, session: Session, username: str, display_name: str, role: str, created_by: str
) -> Operator:
    if not _USERNAME.fullmatch(username or ""):
        raise InvalidInput("username", "must be 2-64 characters: a-z first, then a-z 0-9 . _ -")
    try:
        parsed_role = Role(role)
    except ValueError:
        raise InvalidInput("role", f"must be one of {', '.join(r.value for r in Role)}") from None
    display_name = name_text(display_name or "", "display_name", limit=DISPLAY_NAME_MAX)
    if not display_name:
        raise InvalidInput("display_name", "is required")
    if session.scalar(select(Operator.id).where(Operator.username == username)) is not None:
        raise InvalidInput("username", f"{username!r} is taken")
    operator = Operator(username=username, display_name=display_name, role=parsed_role)
    session.add(operator)
    session.flush()
    audit.record(
        session=session,
        actor=created_by,
        action="operator.created",
        object_type="operator",
        object_id=operator.id,
        payload={"role": parsed_role.value},
    )
    return operator


def get_operator(*, session: Session, username: str) -> Operator:
    operator = session.scalar(select(Operator).where(Operator.username == username))
    if operator is None:
        raise NotFound("operator", username)
    return operator
