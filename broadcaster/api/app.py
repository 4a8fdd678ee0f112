"""The HTTP application: staff (operators, approvers, auditors, admins), residents, and
provider callbacks, with an OpenAPI description at /docs.

`create_app()` builds everything from the settings; tests pass their own settings and the
two hand-offs to the workers (delivery reports to the `receipts` queue, messages to a
resident such as a one-time code).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse

from broadcaster.api import alerts, auditors, callbacks, residents, staff
from broadcaster.api.support import Api, BodyLimit, install_error_handlers
from broadcaster.db import make_engine, make_sessionmaker
from broadcaster.settings import Settings, get_settings

Publish = Callable[[list[dict[str, str]]], None]


def _publish_to_receipts_queue(reports: list[dict[str, str]]) -> None:
    from tasks.jobs import record_smsapi_reports

    record_smsapi_reports.apply_async(args=[reports], queue="receipts")


def _notify_through_worker(notice: Any) -> None:
    from tasks.jobs import send_notice

    send_notice.apply_async(args=[notice.as_dict()], queue="notices")


def create_app(
    settings: Settings | None = None,
    *,
    publish: Publish = _publish_to_receipts_queue,
    notify: Callable[[Any], None] = _notify_through_worker,
) -> FastAPI:
    settings = settings or get_settings()
    engine = make_engine(settings.database_url)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        engine.dispose()

    app = FastAPI(
        lifespan=lifespan,
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
        publish=publish,
        notify=notify,
    )
    app.add_middleware(BodyLimit)
    install_error_handlers(app)

    @app.get("/healthz", response_class=PlainTextResponse, tags=["health"])
    async def health() -> str:
        return "ok"

    for module in (staff, alerts, residents, auditors, callbacks):
        app.include_router(module.router)

    return app
