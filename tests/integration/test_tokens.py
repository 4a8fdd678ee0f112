"""Staff API tokens on SQLite and PostgreSQL: shown once, stored as a hash, expiring,
revocable by their owner or an admin, and every failure the same Unauthenticated."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from broadcaster.audit.models import AuditEvent
from broadcaster.db.engine import utcnow
from broadcaster.errors import Forbidden, InvalidInput, NotFound, Unauthenticated
from broadcaster.staff import tokens
from broadcaster.staff.models import ApiToken, Operator
from tests.conftest import Staff
from tests.integration.test_cli import Cli


def issue(db: sessionmaker[Session], owner: Operator, days: int = 30) -> tokens.Issued:
    with db.begin() as session:
        return tokens.issue_token(
            session=session,
            operator=session.get_one(Operator, owner.id),
            name="ci",
            lifetime_days=days,
        )


def test_a_token_names_its_active_owner_and_only_its_hash_is_kept(
    db: sessionmaker[Session], staff: Staff
) -> None:
    issued = issue(db, staff.approver)
    with db() as session:
        assert tokens.authenticate(session=session, presented=issued.token).id == staff.approver.id
        stored = session.scalars(select(ApiToken.token_hash)).all()
        assert stored == [tokens.token_hash(issued.token)] and issued.token not in stored
        payloads = session.scalars(select(AuditEvent.payload)).all()
        assert all(issued.token not in str(p) for p in payloads)


@pytest.mark.parametrize(
    "spoil",
    ["unknown", "expired", "revoked", "deactivated", "empty", "not-ours"],
)
def test_every_failing_token_is_the_same_unauthenticated(
    db: sessionmaker[Session], staff: Staff, spoil: str
) -> None:
    issued = issue(db, staff.author)
    presented = issued.token
    with db.begin() as session:
        if spoil == "unknown":
            presented = issued.token[:-4] + "AAAA"
        elif spoil == "expired":
            session.execute(update(ApiToken).values(expires_at=utcnow() - timedelta(seconds=1)))
        elif spoil == "revoked":
            tokens.revoke_token(
                session=session,
                actor=session.get_one(Operator, staff.author.id),
                token_id=issued.id,
            )
        elif spoil == "deactivated":
            session.execute(
                update(Operator).where(Operator.id == staff.author.id).values(active=False)
            )
        elif spoil == "empty":
            presented = ""
        else:
            presented = "Bearer " + issued.token
    with db() as session, pytest.raises(Unauthenticated):
        tokens.authenticate(session=session, presented=presented)


def test_only_the_owner_or_an_admin_revokes(db: sessionmaker[Session], staff: Staff) -> None:
    issued = issue(db, staff.author)
    with db.begin() as session, pytest.raises(Forbidden):
        tokens.revoke_token(
            session=session, actor=session.get_one(Operator, staff.approver.id), token_id=issued.id
        )
    with db.begin() as session, pytest.raises(NotFound):
        tokens.revoke_token(
            session=session,
            actor=session.get_one(Operator, staff.admin.id),
            token_id=issued.id + 99,
        )
    with db.begin() as session:
        admin = session.get_one(Operator, staff.admin.id)
        first = tokens.revoke_token(session=session, actor=admin, token_id=issued.id).revoked_at
        assert (
            tokens.revoke_token(session=session, actor=admin, token_id=issued.id).revoked_at
            == first
        )
    with db() as session:
        actions = session.scalars(
            select(AuditEvent.action).where(AuditEvent.action.like("token.%"))
        ).all()
    assert actions == ["token.issued", "token.revoked"]


@pytest.mark.parametrize(
    ("name", "days", "field"),
    [
        ("", 30, "name"),
        ("x" * 65, 30, "name"),
        ("ci", 0, "lifetime_days"),
        ("ci", 366, "lifetime_days"),
    ],
)
def test_bad_requests_name_the_field_and_write_nothing(
    db: sessionmaker[Session], staff: Staff, name: str, days: int, field: str
) -> None:
    with db.begin() as session, pytest.raises(InvalidInput) as refused:
        tokens.issue_token(
            session=session,
            operator=session.get_one(Operator, staff.author.id),
            name=name,
            lifetime_days=days,
        )
    assert refused.value.field == field
    with db() as session:
        assert session.scalars(select(ApiToken)).all() == []


@pytest.fixture
def cli(database_url: str, tmp_path: Path) -> Cli:
    return Cli(database_url, tmp_path)


def test_issue_and_revoke_from_the_command_line(cli: Cli) -> None:
    cli("migrate")
    cli("operator", "add", "anna", "--role", "operator", "--name", "Anna Nowak")
    out = cli("token", "issue", "--as", "anna", "--days", "7").output.splitlines()
    assert out[0].startswith("token 1 expires") and out[1].startswith(tokens.PREFIX)
    assert "lifetime_days" in cli("token", "issue", "--as", "anna", "--days", "400", code=2).output
    cli("operator", "add", "bartek", "--role", "operator", "--name", "Bartek")
    cli("token", "revoke", "1", "--as", "bartek", code=3)
    assert "token 1 revoked" in cli("token", "revoke", "1", "--as", "anna").output
