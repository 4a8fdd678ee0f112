"""The staff credential: a route's dependency that authenticates the bearer token and checks
the role, so a request without a valid token gets 401 (and one with the wrong role 403)
before its body is even read."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from broadcaster.errors import Unauthenticated
from broadcaster.http.support import ApiDep, refuse_unknown_query
from broadcaster.staff import tokens
from broadcaster.staff.models import Operator
from broadcaster.staff.permissions import Action, require

_bearer = HTTPBearer(auto_error=False, description="A staff API token (`wsp_...`).")


def authenticated(
    api: ApiDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Operator:
    """The staff member whose valid token came with the request; 401 otherwise."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthenticated()
    with api.transaction() as session:
        operator = tokens.authenticate(session=session, presented=credentials.credentials)
        session.expunge(operator)
    return operator


def staff(action: Action) -> Any:
    """A dependency: the authenticated staff member, whose role may take `action`
    (broadcaster/staff/permissions.py)."""

    def check(request: Request, operator: Annotated[Operator, Depends(authenticated)]) -> Operator:
        require(operator, action)
        # After the credential and the role: a stranger learns nothing from a 422.
        refuse_unknown_query(request)
        return operator

    return Depends(check)
