"""The pages: the residents' site and the staff console, over the same services as the API
(see core.py)."""

from __future__ import annotations

from fastapi import FastAPI

from broadcaster.settings import Settings
from broadcaster.web.core import no_route_page

__all__ = ["install", "no_route_page"]


def install(app: FastAPI, settings: Settings) -> None:
    from broadcaster.web import alerts, auditors, compose, docs, links, residents, sandbox, staff

    docs.mount_assets(app)
    app.include_router(docs.router)
    app.include_router(staff.router)
    # Routes match in order: /console/alerts/new and /console/alerts/preview before the
    # alert's own /console/alerts/{alert_id}, which would take them for an id.
    app.include_router(compose.router)
    app.include_router(alerts.router)
    app.include_router(auditors.router)
    app.include_router(residents.router)
    app.include_router(links.router)
    app.state.sandbox_viewer = sandbox.available(settings)
    if app.state.sandbox_viewer:
        app.include_router(sandbox.router)
