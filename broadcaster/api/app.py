"""The HTTP application: provider callbacks (delivery reports) and health.

SMSAPI calls its callback URL with MsgId, status and idx (several reports comma-joined,
by GET, or by POST as a form) and expects the body `OK`. The reports are handed to the
`receipts` queue as plain data and applied in bulk by a worker; the answer does not wait.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import PlainTextResponse

from broadcaster.receipts import parse_smsapi

Publish = Callable[[list[dict[str, str]]], None]


def _publish_to_receipts_queue(reports: list[dict[str, str]]) -> None:
    from tasks.jobs import record_smsapi_reports

    record_smsapi_reports.apply_async(args=[reports], queue="receipts")


def create_app(*, publish: Publish = _publish_to_receipts_queue) -> FastAPI:
    app = FastAPI(title="Warszawski System Powiadomień", version="0.1.0")

    @app.get("/healthz", response_class=PlainTextResponse)
    async def health() -> str:
        return "ok"

    async def smsapi_reports(request: Request) -> str:
        fields: dict[str, Any] = dict(request.query_params)
        if request.method == "POST":
            fields.update(dict(await request.form()))
        missing = [name for name in ("MsgId", "status", "idx") if not fields.get(name)]
        if missing:
            raise HTTPException(status_code=422, detail=f"{missing[0]}: is required")
        try:
            reports = parse_smsapi(str(fields["MsgId"]), str(fields["status"]), str(fields["idx"]))
        except ValueError as error:
            raise HTTPException(status_code=422, detail=f"MsgId: {error}") from None
        publish([{"provider_id": r.provider_id, "status": r.status, "idx": r.idx} for r in reports])
        return "OK"

    app.add_api_route(
        "/receipts/smsapi",
        smsapi_reports,
        methods=["GET", "POST"],
        response_class=PlainTextResponse,
    )
    return app
