"""Staff accounts and their API tokens.

Every staff member manages their own tokens (a token is shown once, when issued); an
admin creates accounts and may revoke anybody's token.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field
from sqlalchemy import select

from broadcaster.api.deps import staff
from broadcaster.api.schemas import Body, ObjectId, PlainText
from broadcaster.api.strict_json import StrictJsonRoute
from broadcaster.http.support import ApiDep
from broadcaster.staff import operators, tokens
from broadcaster.staff.models import ApiToken, Operator, Role
from broadcaster.staff.operators import actor_of
from broadcaster.staff.permissions import Action

router = APIRouter(tags=["staff"], route_class=StrictJsonRoute)

Anyone = Annotated[Operator, staff(Action.OWN_ACCOUNT)]
Admin = Annotated[Operator, staff(Action.MANAGE_OPERATORS)]


class OperatorOut(BaseModel):
    id: int
    username: str
    display_name: str
    role: Role
    active: bool


def _operator(operator: Operator) -> OperatorOut:
    return OperatorOut(
        id=operator.id,
        username=operator.username,
        display_name=operator.display_name,
        role=operator.role,
        active=operator.active,
    )


class NewOperator(Body):
    username: PlainText = Field(max_length=64)
    display_name: PlainText = Field(max_length=120)
    role: Role


class NewToken(Body):
    name: PlainText = Field(description="What the token is for, e.g. the laptop it lives on.")
    lifetime_days: int = Field(default=90, ge=1, le=tokens.MAX_LIFETIME_DAYS)


class IssuedToken(BaseModel):
    id: int
    token: str = Field(description="Shown once: only its hash is kept.")
    expires_at: datetime


class TokenOut(BaseModel):
    id: int
    name: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None


@router.get("/me", response_model=OperatorOut)
def who_am_i(me: Anyone) -> OperatorOut:
    return _operator(me)


@router.post("/tokens", status_code=201, response_model=IssuedToken)
def issue_token(body: NewToken, me: Anyone, api: ApiDep) -> IssuedToken:
    with api.transaction() as session:
        owner = session.get_one(Operator, me.id)
        issued = tokens.issue_token(
            session=session, operator=owner, name=body.name, lifetime_days=body.lifetime_days
        )
    return IssuedToken(id=issued.id, token=issued.token, expires_at=issued.expires_at)


@router.get("/tokens", response_model=list[TokenOut])
def my_tokens(me: Anyone, api: ApiDep) -> list[TokenOut]:
    with api.transaction() as session:
        rows = session.scalars(
            select(ApiToken).where(ApiToken.operator_id == me.id).order_by(ApiToken.id)
        )
        return [
            TokenOut(
                id=row.id,
                name=row.name,
                created_at=row.created_at,
                expires_at=row.expires_at,
                revoked_at=row.revoked_at,
            )
            for row in rows
        ]


@router.delete("/tokens/{token_id}", status_code=204, response_class=Response)
def revoke_token(token_id: ObjectId, me: Anyone, api: ApiDep) -> Response:
    with api.transaction() as session:
        tokens.revoke_token(session=session, actor=me, token_id=token_id)
    return Response(status_code=204)


@router.get("/operators", response_model=list[OperatorOut])
def list_operators(_admin: Admin, api: ApiDep) -> list[OperatorOut]:
    with api.transaction() as session:
        return [_operator(o) for o in session.scalars(select(Operator).order_by(Operator.id))]


@router.post("/operators", status_code=201, response_model=OperatorOut)
def create_operator(body: NewOperator, admin: Admin, api: ApiDep) -> OperatorOut:
    with api.transaction() as session:
        created = operators.create_operator(
            session=session,
            username=body.username,
            display_name=body.display_name,
            role=body.role.value,
            created_by=actor_of(admin),
        )
        return _operator(created)
