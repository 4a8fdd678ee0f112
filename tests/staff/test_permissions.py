"""Who may do what: the one table every face and the domain ask, and four eyes."""

from __future__ import annotations

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from broadcaster.errors import Forbidden
from broadcaster.staff import permissions, tokens
from broadcaster.staff.models import Operator, Role
from broadcaster.staff.permissions import Action
from tests.conftest import Staff

OPERATOR, APPROVER, AUDITOR, ADMIN = Role.OPERATOR, Role.APPROVER, Role.AUDITOR, Role.ADMIN

# The table as a reader states it, one row per action: whoever is not listed is refused.
EXPECTED = [
    (Action.READ_ALERTS, {OPERATOR, APPROVER, AUDITOR, ADMIN}),
    (Action.WRITE_ALERTS, {OPERATOR, ADMIN}),
    (Action.ACT_ON_OTHERS_DRAFTS, {ADMIN}),
    (Action.REVIEW_ALERTS, {APPROVER, ADMIN}),
    (Action.CANCEL_ALERTS, {OPERATOR, APPROVER, ADMIN}),
    (Action.READ_DELIVERY_LOG, {AUDITOR, ADMIN}),
    (Action.READ_AUDIT_TRAIL, {AUDITOR, ADMIN}),
    (Action.RESEAL_AUDIT_TRAIL, {ADMIN}),
    (Action.MANAGE_OPERATORS, {ADMIN}),
    (Action.OWN_ACCOUNT, {OPERATOR, APPROVER, AUDITOR, ADMIN}),
    (Action.REVOKE_ANY_TOKEN, {ADMIN}),
    (Action.VIEW_SANDBOX, {OPERATOR, APPROVER, AUDITOR, ADMIN}),
]


def person(role: Role, *, id: int = 1, active: bool = True) -> Operator:
    return Operator(id=id, username=f"{role.value}{id}", display_name="X", role=role, active=active)


def test_every_action_has_a_row() -> None:
    assert {action for action, _ in EXPECTED} == set(Action) == set(permissions.PERMISSIONS)


@pytest.mark.parametrize(("action", "allowed"), EXPECTED)
@pytest.mark.parametrize("role", list(Role))
def test_the_table(action: Action, allowed: set[Role], role: Role) -> None:
    someone = person(role)
    assert permissions.can(someone, action) is (role in allowed)
    if role in allowed:
        permissions.require(someone, action)
    else:
        with pytest.raises(Forbidden, match=f"is {role.value}$"):
            permissions.require(someone, action)


@pytest.mark.parametrize(
    ("action", "role", "refusal"),
    [
        (
            Action.REVIEW_ALERTS,
            OPERATOR,
            "this needs the approver or admin role; operator1 is operator",
        ),
        (
            Action.WRITE_ALERTS,
            AUDITOR,
            "this needs the operator or admin role; auditor1 is auditor",
        ),
        (
            Action.CANCEL_ALERTS,
            AUDITOR,
            "this needs the operator or approver or admin role; auditor1 is auditor",
        ),
        (
            Action.READ_AUDIT_TRAIL,
            APPROVER,
            "this needs the auditor or admin role; approver1 is approver",
        ),
    ],
)
def test_a_refusal_names_the_roles_in_their_order(action: Action, role: Role, refusal: str) -> None:
    with pytest.raises(Forbidden) as refused:
        permissions.require(person(role), action)
    assert str(refused.value) == refusal


@pytest.mark.parametrize("action", list(Action))
def test_a_deactivated_account_may_do_nothing(action: Action) -> None:
    gone = person(ADMIN, active=False)
    assert not permissions.can(gone, action)
    with pytest.raises(Forbidden, match="operator admin1 is deactivated"):
        permissions.require(gone, action)


@pytest.mark.parametrize(
    ("role", "reviewer", "author", "submitter", "editors", "may_review"),
    [
        (APPROVER, 3, 1, 1, [1], True),
        (APPROVER, 1, 1, 1, [1], False),  # the author
        (APPROVER, 2, 1, 1, [1, 2], False),  # edited it
        (APPROVER, 2, 1, 2, [1], False),  # sent it for approval
        (ADMIN, 1, 1, None, [1], False),  # an admin is no exception
        (ADMIN, 2, 1, None, [1], True),
    ],
)
def test_four_eyes(
    role: Role,
    reviewer: int,
    author: int,
    submitter: int | None,
    editors: list[int],
    may_review: bool,
) -> None:
    who = person(role, id=reviewer)
    assert (
        permissions.second_person(
            who, author_id=author, submitted_by_id=submitter, editor_ids=editors
        )
        is may_review
    )


@pytest.mark.parametrize(
    ("role", "me", "author", "may"),
    [(OPERATOR, 1, 1, True), (OPERATOR, 2, 1, False), (ADMIN, 2, 1, True), (APPROVER, 1, 1, True)],
)
def test_only_the_author_or_an_admin_acts_on_a_draft(
    role: Role, me: int, author: int, may: bool
) -> None:
    # Whether the role may write at all is WRITE_ALERTS, asked first by every caller.
    assert permissions.may_act_on_draft(person(role, id=me), author_id=author) is may


def test_a_deactivated_admin_revokes_only_their_own_tokens(
    db: sessionmaker[Session], staff: Staff
) -> None:
    with db.begin() as session:
        theirs = tokens.issue_token(
            session=session, operator=staff.author, name="ci", lifetime_days=1
        )
        own = tokens.issue_token(session=session, operator=staff.admin, name="ci", lifetime_days=1)
        session.execute(update(Operator).where(Operator.id == staff.admin.id).values(active=False))
    with db.begin() as session:
        admin = session.get_one(Operator, staff.admin.id)
        with pytest.raises(Forbidden, match="only the token's owner or an admin"):
            tokens.revoke_token(session=session, actor=admin, token_id=theirs.id)
    with db.begin() as session:
        admin = session.get_one(Operator, staff.admin.id)
        assert tokens.revoke_token(session=session, actor=admin, token_id=own.id).revoked_at
