"""Provider callbacks: SMSAPI delivery reports and incoming SMS (keywords).

SMSAPI does not sign its callbacks, so each URL carries a secret path segment
(`WSP_SMSAPI_CALLBACK_SECRET`): a request with another one is refused with 403, and with
no secret configured both endpoints refuse everything. The report URL is given to SMSAPI
with every send (`notify_url`); the incoming-SMS one is set in SMSAPI's panel.

SMSAPI calls the report URL with MsgId, status and idx (several reports comma-joined,
by GET, or by POST as a form) and expects the body `OK`. The reports are handed to the
`receipts` queue as plain data and applied in bulk by a worker; the answer does not wait.
A report counts only if its MsgId is the one SMSAPI gave that delivery's send.

Incoming SMS ("Odbiór SMS") arrive as a form with sms_from (the sender, digits with the
country code, no '+'), sms_to, sms_text, sms_date (Unix time), MsgId and username, and
SMSAPI expects `OK`. STOP and START keywords (`broadcaster.residents.keywords`) stop or
start that phone's alerts; anything else is ignored, and still answered `OK`, so that
SMSAPI does not retry it.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import PlainTextResponse
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from broadcaster.api.strict_json import StrictJsonRoute
from broadcaster.errors import Forbidden, InvalidInput
from broadcaster.http.support import Api, ApiDep, ResidentsDep
from broadcaster.residents.keywords import read_keyword
from channels.sms import parse_smsapi


def ours(secret: str, api: ApiDep) -> None:
    """The secret path segment must be the configured one (compared in constant time)."""
    expected = api.settings.smsapi_callback_secret
    if not expected or not hmac.compare_digest(expected.encode(), secret.encode()):
        raise Forbidden("this callback URL is not ours")


_FORGED: dict[int | str, dict[str, Any]] = {
    403: {"description": "The secret in the URL is not ours."}
}
router = APIRouter(
    prefix="/callbacks/smsapi",
    route_class=StrictJsonRoute,
    tags=["provider callbacks"],
    dependencies=[Depends(ours)],
    responses=_FORGED,
)


def _publish_reports(api: Api, msg_ids: str, statuses: str, idx: str) -> str:
    try:
        reports = parse_smsapi(msg_ids, statuses, idx)
    except ValueError as error:
        raise InvalidInput("MsgId", str(error)) from None
    api.publish([{"provider_id": r.provider_id, "status": r.status, "idx": r.idx} for r in reports])
    return "OK"


# SMSAPI joins several reports with commas (a few hundred characters for a batch).
ReportField = Annotated[str, Field(min_length=1, max_length=10_000)]


@router.get("/reports/{secret}", response_class=PlainTextResponse, operation_id="smsapi_reports")
async def smsapi_reports(
    api: ApiDep,
    msg_ids: Annotated[ReportField, Query(alias="MsgId")],
    statuses: Annotated[ReportField, Query(alias="status")],
    idx: Annotated[ReportField, Query()],
) -> str:
    """Delivery reports (several comma-joined); the other fields SMSAPI sends are ignored."""
    return _publish_reports(api, msg_ids, statuses, idx)


@router.post(
    "/reports/{secret}", response_class=PlainTextResponse, operation_id="smsapi_reports_by_form"
)
async def smsapi_reports_by_form(
    api: ApiDep,
    msg_ids: Annotated[ReportField, Form(alias="MsgId")],
    statuses: Annotated[ReportField, Form(alias="status")],
    idx: Annotated[ReportField, Form()],
) -> str:
    return _publish_reports(api, msg_ids, statuses, idx)


@router.get("/incoming/{secret}", response_class=PlainTextResponse, operation_id="smsapi_incoming")
@router.post(
    "/incoming/{secret}", response_class=PlainTextResponse, operation_id="smsapi_incoming_by_form"
)
async def smsapi_incoming(request: Request, residents: ResidentsDep) -> str:
    """An SMS a resident sent to our number: STOP and START keywords."""
    fields: dict[str, Any] = dict(request.query_params)
    if request.method == "POST":
        fields.update(dict(await request.form()))
    missing = [name for name in ("sms_from", "sms_text") if not str(fields.get(name, ""))]
    if missing:
        raise InvalidInput(missing[0], "is required")
    word = read_keyword(str(fields["sms_text"]))
    if word is None:
        return "OK"
    sender = str(fields["sms_from"])
    await run_in_threadpool(residents.apply_sms_keyword, word=word, sender=sender)
    return "OK"
