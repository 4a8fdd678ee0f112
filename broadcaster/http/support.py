"""What every route of both faces shares: the database, our errors as HTTP, the limits on a
request (body size, unknown query parameters) and the headers of every page.

Each route opens its own transaction with `Api.transaction()` and commits before it
answers, so a client never sees a success for something that was not written.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, get_args, get_origin

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.dependencies.models import Dependant
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel
from sqlalchemy.orm import Session, sessionmaker
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from broadcaster.alerts.models import Alert, AlertStatus
from broadcaster.db.engine import utcnow
from broadcaster.dispatch.planning import is_due, is_urgent
from broadcaster.errors import (
    BroadcasterError,
    Conflict,
    ExpiredLink,
    Forbidden,
    InvalidInput,
    LinkRefused,
    NotFound,
    RateLimited,
    Unauthenticated,
)
from broadcaster.residents.limits import Limits, client_ip
from broadcaster.residents.services import Residents
from broadcaster.settings import Settings

_log = logging.getLogger(__name__)

# Every HTML page: scripts and styles only from our own origin, no inline code, never
# framed, forms post only to us, nothing cached, and a referrer only to ourselves: a
# page's URL can carry a resident's signed link. (With no referrer at all, Chromium
# sends `Origin: null` with a form, and the console could not tell it from a forgery.)
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}

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
        plan_now: Callable[[int, bool], None],
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.publish = publish
        self.notify = notify
        self.plan_now = plan_now

    def start_planning(self, alert: Alert) -> None:
        """Hand an alert just approved, if it is due, to the planner, after the commit. A
        broker that fails now must not fail the approval: the sweeper plans it anyway,
        within a sweep."""
        if alert.status is not AlertStatus.APPROVED or not is_due(alert, utcnow()):
            return
        try:
            self.plan_now(alert.id, is_urgent(alert))
        except Exception:
            _log.exception("alert %s could not be handed to the planner", alert.id)

    def hand_off(self, notices: Iterable[Any]) -> None:
        """Queue messages to residents, after the commit. A broker that fails now must
        not turn a committed request into a 500: the resident can ask again, and the
        failure is logged (what was held for the worker is dropped, unsent, after an
        hour: `subscribers.pending.MAX_AGE`)."""
        for notice in notices:
            try:
                self.notify(notice)
            except Exception:
                _log.exception("a %s request could not be queued", getattr(notice, "kind", "?"))

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        with self.sessions() as session, session.begin():
            yield session


def get_api(request: Request) -> Api:
    api: Api = request.app.state.api
    return api


ApiDep = Annotated[Api, Depends(get_api)]


def get_residents(request: Request) -> Residents:
    """The residents' flows, for both faces: one per application, so that its limits
    (kept in this process unless the deployment runs on Redis) are the same for all."""
    state = request.app.state
    residents: Residents | None = getattr(state, "residents", None)
    if residents is None:
        api = get_api(request)
        residents = state.residents = Residents(
            settings=api.settings,
            sessions=api.sessions,
            limits=Limits.for_settings(api.settings),
            hand_off=api.hand_off,
        )
    return residents


ResidentsDep = Annotated[Residents, Depends(get_residents)]


def ip_of(request: Request, settings: Settings) -> str:
    """The client's address as the residents' limits count it (`client_ip`)."""
    return client_ip(
        peer=request.client.host if request.client else "unknown",
        forwarded_for=request.headers.getlist("x-forwarded-for"),
        hops=settings.forwarded_for_hops,
    )


def _field_location(field: str) -> list[str | int]:
    return ["body", *field.replace("[", ".").replace("]", "").split(".")]


def _json(status: int, detail: Any, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


# Our domain errors as HTTP status codes, for the API's answers and the pages alike
# (the most specific class first; anything else is 400).
STATUS_CODES: tuple[tuple[type[BroadcasterError], int], ...] = (
    (InvalidInput, 422),
    (Unauthenticated, 401),
    (Forbidden, 403),
    (NotFound, 404),
    (ExpiredLink, 410),
    (LinkRefused, 404),
    (Conflict, 409),
    (RateLimited, 429),
)


def status_of(error: BroadcasterError) -> int:
    return next((code for kind, code in STATUS_CODES if isinstance(error, kind)), 400)


def error_response(error: BroadcasterError) -> JSONResponse:
    """Our domain errors as HTTP: 422 names the field, as FastAPI's own validation does."""
    if isinstance(error, InvalidInput):
        entry: dict[str, Any] = {
            "type": "value_error",
            "loc": _field_location(error.field),
            "msg": error.message,
            "field": error.field,
        }
        if error.translations:
            # Worded from the catalogue: the message in every language, Polish first.
            entry["messages"] = error.translations
        return _json(422, [entry])
    if isinstance(error, Unauthenticated):
        return _json(401, str(error), {"WWW-Authenticate": "Bearer"})
    if isinstance(error, RateLimited):
        return _json(429, str(error), {"Retry-After": str(max(1, round(error.retry_after)))})
    return _json(status_of(error), str(error))


# What answers a request no route took (404) or took by another method (405) on a path
# of the pages: a page in the reader's language, or None where the API answers JSON.
NoRoutePage = Callable[[Request, int], Awaitable[Response | None]]


def install_error_handlers(app: FastAPI, *, no_route_page: NoRoutePage | None = None) -> None:
    async def handle(_request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, BroadcasterError)
        return error_response(error)

    async def http_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, StarletteHTTPException)
        if error.status_code in (404, 405) and no_route_page is not None:
            page = await no_route_page(request, error.status_code)
            if page is not None:
                page.headers.update(error.headers or {})  # 405's Allow
                return page
        if error.status_code == 400:
            # FastAPI's answer to a body it cannot decode (not UTF-8, not form data): a
            # validation error like any other, about the body as a whole.
            return _json(422, [{"type": "body_invalid", "loc": ["body"], "msg": str(error.detail)}])
        return await http_exception_handler(request, error)

    app.add_exception_handler(BroadcasterError, handle)
    app.add_exception_handler(StarletteHTTPException, http_error)


def _many(annotation: Any) -> bool:
    """Whether a parameter of this type takes several values (`?status=a&status=b`)."""
    origin = get_origin(annotation)
    if origin in (list, tuple, set, frozenset):
        return True
    return any(_many(arg) for arg in get_args(annotation)) if origin is not None else False


def _query_names(dependant: Dependant) -> dict[str, bool]:
    """The route's query parameters, and whether each may be repeated."""
    names: dict[str, bool] = {}
    for param in dependant.query_params:
        model = param.field_info.annotation
        if isinstance(model, type) and issubclass(model, BaseModel):
            # Query parameters declared together as one model.
            for name, field in model.model_fields.items():
                names[field.alias or name] = _many(field.annotation)
        else:
            names[param.alias] = _many(model)
    for sub in dependant.dependencies:
        names.update(_query_names(sub))
    return names


def refuse_unknown_query(request: Request) -> None:
    """Refuse query parameters a route does not take, and a single-valued one given twice:
    an auditor's misspelt or doubled filter must not quietly return something else."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not request.query_params:
        return
    known = _query_names(route.dependant)
    for name in request.query_params:
        values = request.query_params.getlist(name)
        if name not in known:
            problem = "is not a parameter of this route"
        elif len(values) > 1 and not known[name]:
            problem = "is given more than once"
        else:
            continue
        raise RequestValidationError(
            [{"type": "extra_forbidden", "loc": ["query", name], "msg": problem, "input": values}]
        )


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


# Paths with a credential for a segment: a resident's signed link, a callback secret.
_SECRET_PATH = re.compile(
    r"(/(?:manage|my|u|residents/confirm|callbacks/smsapi/(?:reports|incoming))/)[^/?#\s]+"
)


def hide_secrets_in_path(path: str) -> str:
    return _SECRET_PATH.sub(r"\1***", path)


class HideSecretPaths(logging.Filter):
    """For uvicorn's access log: the links residents open and the callback URLs carry
    their credentials in the path, and an access log is read by more people than those
    who may use them. uvicorn logs (client, method, path, HTTP version, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            record.args = (*args[:2], hide_secrets_in_path(args[2]), *args[3:])
        return True
