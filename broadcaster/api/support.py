"""What every route shares: the database, the staff credential, and our errors as HTTP.

Each route opens its own transaction with `Api.transaction()` and commits before it
answers, so a client never sees a success for something that was not written. Staff are
authenticated by a dependency, so a request without a valid token gets 401 (and one
with the wrong role 403) before its body is even read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from broadcaster import tokens
from broadcaster.errors import (
    BroadcasterError,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    RateLimited,
    Unauthenticated,
)
from broadcaster.models import Operator, Role
from broadcaster.operators import require_role
from broadcaster.settings import Settings

MAX_BODY_BYTES = 1_000_000


class Api:
    """The application's state: settings, sessions, and how it reaches the workers."""

    def __init__(
        self,
        *,
        settings: Settings,
        sessions: sessionmaker[Session],
        publish: Callable[[list[dict[str, str]]], None],
        notify: Callable[[Any], None],
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.publish = publish
        self.notify = notify

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        with self.sessions() as session, session.begin():
            yield session


def get_api(request: Request) -> Api:
    api: Api = request.app.state.api
    return api


ApiDep = Annotated[Api, Depends(get_api)]

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


def staff(*roles: Role) -> Any:
    """A dependency: the authenticated staff member, who must hold one of `roles`."""

    def check(operator: Annotated[Operator, Depends(authenticated)]) -> Operator:
        require_role(operator, *roles)
        return operator

    return Depends(check)


def _field_location(field: str) -> list[str | int]:
    return ["body", *field.replace("[", ".").replace("]", "").split(".")]


def _json(status: int, detail: Any, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def error_response(error: BroadcasterError) -> JSONResponse:
    """Our domain errors as HTTP: 422 names the field, as FastAPI's own validation does."""
    if isinstance(error, InvalidInput):
        return _json(
            422,
            [
                {
                    "type": "value_error",
                    "loc": _field_location(error.field),
                    "msg": error.message,
                    "field": error.field,
                }
            ],
        )
    if isinstance(error, Unauthenticated):
        return _json(401, str(error), {"WWW-Authenticate": "Bearer"})
    if isinstance(error, Forbidden):
        return _json(403, str(error))
    if isinstance(error, NotFound):
        return _json(404, str(error))
    if isinstance(error, Conflict):
        return _json(409, str(error))
    if isinstance(error, RateLimited):
        return _json(429, str(error), {"Retry-After": str(max(1, round(error.retry_after)))})
    return _json(400, str(error))


def install_error_handlers(app: FastAPI) -> None:
    async def handle(_request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, BroadcasterError)
        return error_response(error)

    app.add_exception_handler(BroadcasterError, handle)


class BodyTooLarge(HTTPException):
    def __init__(self) -> None:
        super().__init__(413, f"the request body is larger than {MAX_BODY_BYTES} bytes")


class BodyLimit:
    """Refuse request bodies over `limit` bytes with 413: at once when Content-Length says
    so, and while reading when a chunked body grows past it."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            response = _json(413, f"the request body is larger than {self.limit} bytes")
            await response(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge()
            return message

        await self.app(scope, limited, send)
