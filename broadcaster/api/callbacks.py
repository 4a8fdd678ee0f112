"""Provider callbacks: SMSAPI delivery reports (and incoming SMS keywords).

SMSAPI calls its callback URL with MsgId, status and idx (several reports comma-joined,
by GET, or by POST as a form) and expects the body `OK`. The reports are handed to the
`receipts` queue as plain data and applied in bulk by a worker; the answer does not wait.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import PlainTextResponse

from broadcaster.api.support import ApiDep
from broadcaster.receipts import parse_smsapi

router = APIRouter(tags=["provider callbacks"])


@router.api_route("/receipts/smsapi", methods=["GET", "POST"], response_class=PlainTextResponse)
async def smsapi_reports(request: Request, api: ApiDep) -> str:
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
    api.publish([{"provider_id": r.provider_id, "status": r.status, "idx": r.idx} for r in reports])
    return "OK"
