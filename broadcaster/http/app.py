"""The HTTP application: staff (operators, approvers, auditors, admins), residents, and
provider callbacks, with an OpenAPI description at /docs.

`create_app()` builds everything from the settings; tests pass their own settings and the
hand-offs to the workers (delivery reports to the `receipts` queue, messages to a
resident such as a one-time code, alerts approved for now to the planner).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import uvicorn
from fastapi import Depends, FastAPI
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel

from broadcaster import web
from broadcaster.api import alerts, auditors, callbacks, residents, staff
from broadcaster.db.engine import make_engine, make_sessionmaker
from broadcaster.http.support import Api, BodyLimit, install_error_handlers, refuse_unknown_query
from broadcaster.settings import Settings, get_settings
from subscribers.pending import Queued

if TYPE_CHECKING:
    from celery import Celery

Publish = Callable[[list[dict[str, str]]], None]
# (alert id, urgent): an alert just approved and due, to be planned at once.
PlanNow = Callable[[int, bool], None]


class Problem(BaseModel):
    detail: str


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    what = {
        401: "No valid token: unknown, expired or revoked, or a deactivated account",
        403: "The role, or the rule about this object (author, four eyes), does not allow it",
        404: "No such object",
        409: "The object's state does not allow it",
        410: "The link has expired",
        413: "The request body is over 1,000,000 bytes",
        429: "Too many requests; Retry-After says when to try again",
    }
    # Errors are JSON on every route, plain-text ones (provider callbacks) included.
    problem = {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    return {
        code: {"model": Problem, "description": what[code], "content": problem} for code in codes
    }


STAFF_ERRORS = _errors(401, 403, 404, 409, 413, 429)
PUBLIC_ERRORS = _errors(403, 404, 409, 410, 413, 429)


# What goes to the `notices` queue: the id of a pending request (a message to send, or
# work that decides it), never its address, code or link.
Notify = Callable[[Queued], None]


def worker_handoffs(celery: Celery | None = None) -> tuple[Publish, Notify, PlanNow]:
    """What the API hands to the workers: delivery reports to the `receipts` queue,
    the ids of pending notices, reminders and sign-ups to `notices`, and alerts approved
    for now to the planner (`plan_now`: the sweeper would find them within a sweep, this
    saves that wait), through `celery` (default: the process-wide app). By task name, so
    that this process need not import the tasks."""

    def client() -> Celery:
        if celery is not None:
            return celery
        from tasks.app import app as process_app

        return process_app

    def publish(reports: list[dict[str, str]]) -> None:
        client().send_task("tasks.jobs.record_smsapi_reports", args=[reports], queue="receipts")

    def notify(handed: Queued) -> None:
        client().send_task(handed.task, args=[handed.id], queue="notices")

    def plan_now(alert_id: int, urgent: bool) -> None:
        from tasks.app import NORMAL_PRIORITY, URGENT_PRIORITY

        client().send_task(
            "tasks.jobs.plan_alert",
            args=[alert_id],
            queue="plan",
            priority=URGENT_PRIORITY if urgent else NORMAL_PRIORITY,
        )

    return publish, notify, plan_now


def create_app(
    settings: Settings | None = None,
    *,
    publish: Publish | None = None,
    notify: Notify | None = None,
    plan_now: PlanNow | None = None,
) -> FastAPI:
    settings = settings or get_settings()
    default_publish, default_notify, default_plan_now = worker_handoffs()
    engine = make_engine(settings.database_url)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        engine.dispose()

    app = FastAPI(
        lifespan=lifespan,
        # Our own pages, whose scripts are served from here (web/docs.py).
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
        title="Warszawski System Powiadomień",
        version="0.1.0",
        description=(
            "Targeted alerts for Warsaw's residents. Staff authenticate with a bearer token "
            "(`broadcaster token issue`); residents need no account: they act through "
            "one-time codes and signed links."
        ),
    )
    app.state.api = Api(
        settings=settings,
        sessions=make_sessionmaker(engine, secret_key=settings.secret_key),
        publish=publish or default_publish,
        notify=notify or default_notify,
        plan_now=plan_now or default_plan_now,
    )
    app.add_middleware(BodyLimit)
    install_error_handlers(app, no_route_page=web.no_route_page)

    @app.get("/healthz", response_class=PlainTextResponse, tags=["health"])
    async def health() -> str:
        return "ok"

    # Staff routes refuse unknown query parameters in their credential check.
    for module in (staff, alerts, auditors):
        app.include_router(module.router, responses=STAFF_ERRORS)
    app.include_router(
        residents.router, responses=PUBLIC_ERRORS, dependencies=[Depends(refuse_unknown_query)]
    )
    # Providers send fields we do not use (SMSAPI: username, points, donedate, ...).
    app.include_router(callbacks.router, responses=PUBLIC_ERRORS)
    web.install(app, settings)

    return app


def server_config(app: FastAPI, *, host: str, port: int, log_level: str) -> uvicorn.Config:
    """How uvicorn serves the app. Its own proxy handling stays off: it would believe
    X-Forwarded-For (and -Proto) from any loopback peer and put the client's own word in
    place of the peer's address, so that one client could pose as many and get past the
    per-IP limits. Which proxies are believed is `WSP_FORWARDED_FOR_HOPS`' alone (see
    `broadcaster.residents.limits.client_ip`)."""
    return uvicorn.Config(app, host=host, port=port, log_level=log_level, proxy_headers=False)
