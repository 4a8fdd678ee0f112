"""The web console: server-rendered pages for staff and residents (see core.py)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from broadcaster.settings import Settings


def install(app: FastAPI, settings: Settings) -> None:
    from broadcaster.web import auditors, residents, sandbox, staff

    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")
    app.include_router(staff.router)
    app.include_router(auditors.router)
    app.include_router(residents.router)
    app.state.sandbox_viewer = sandbox.available(settings)
    if app.state.sandbox_viewer:
        app.include_router(sandbox.router)
