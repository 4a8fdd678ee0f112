"""Auditors' pages (read-only): the delivery log with its filters, a page at a time and
as CSV, and the audit trail with its verification. Alert history (who did what) is on
each alert's page."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter
from fastapi.responses import Response, StreamingResponse

from broadcaster.audit import trail as audit
from broadcaster.audit import verification
from broadcaster.db.engine import utcnow
from broadcaster.dispatch import log as delivery_log
from broadcaster.dispatch.log import DeliveryFilter
from broadcaster.dispatch.models import DeliveryStatus
from broadcaster.errors import InvalidInput
from broadcaster.staff.permissions import Action
from broadcaster.web.core import Page, PageDep, WebRoute, finish, require, warsaw_time
from channels import Channel

router = APIRouter(prefix="/console", route_class=WebRoute, include_in_schema=False)

PAGE_ROWS = 50
FILTERS = ("alert", "channel", "status", "district", "from", "to")


def _number(value: str, field: str) -> int | None:
    if not value.strip():
        return None
    digits = value.strip()
    if not (digits.isascii() and digits.isdigit()) or not 0 < int(digits) < 2**31:
        raise InvalidInput(field, "must be a whole number (an id)")
    return int(digits)


def _choice(value: str, kind: type[Any], field: str) -> Any:
    if not value:
        return None
    try:
        return kind(value)
    except ValueError:
        raise InvalidInput(field, "is not one of the choices") from None


def _filter(page: Page, values: dict[str, str]) -> DeliveryFilter:
    with page.api.transaction() as session:
        return delivery_log.build_filter(
            session=session,
            alert_id=_number(values.get("alert", ""), "alert"),
            channel=_choice(values.get("channel", ""), Channel, "channel"),
            status=_choice(values.get("status", ""), DeliveryStatus, "status"),
            district=values.get("district") or None,
            created_from=warsaw_time(values.get("from", ""), "from"),
            created_to=warsaw_time(values.get("to", ""), "to"),
        )


def _log_page(page: Page, values: dict[str, str], code: int = 200, **shown: Any) -> Response:
    return page.render(
        "log.html",
        code=code,
        values=values,
        channels=[c.value for c in Channel],
        statuses=[s.value for s in DeliveryStatus],
        query=urlencode({k: values[k] for k in FILTERS if values.get(k)}),
        **shown,
    )


@router.get("/log")
def delivery_log_page(page: PageDep) -> Response:
    require(page, Action.READ_DELIVERY_LOG)
    values = {k: page.request.query_params.get(k, "") for k in (*FILTERS, "after")}
    try:
        chosen = _filter(page, values)
        after = _number(values.get("after", ""), "after")
    except InvalidInput as error:
        return _log_page(
            page, values, 422, rows=[], next_after=None, errors={error.field: error.message}
        )
    with page.api.transaction() as session:
        found = delivery_log.read_page(session=session, chosen=chosen, after=after, limit=PAGE_ROWS)
    return _log_page(page, values, rows=found.rows, next_after=found.next_after, errors={})


@router.get("/log.csv")
def delivery_log_csv(page: PageDep) -> Response:
    require(page, Action.READ_DELIVERY_LOG)
    values = {k: page.request.query_params.get(k, "") for k in FILTERS}
    try:
        chosen = _filter(page, values)
    except InvalidInput as error:
        return _log_page(
            page, values, 422, rows=[], next_after=None, errors={error.field: error.message}
        )
    rows = delivery_log.export(sessions=page.api.sessions, chosen=chosen)
    filename = f"deliveries-{utcnow():%Y%m%dT%H%M%SZ}.csv"
    response = StreamingResponse(
        delivery_log.csv_chunks(rows),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
    return finish(response, page.request, page.settings)


@router.get("/audit")
def audit_page(page: PageDep, verify: str = "", before: str = "", checkpoint: str = "") -> Response:
    require(page, Action.READ_AUDIT_TRAIL)
    values = {
        k: page.request.query_params.get(k, "")
        for k in ("object_type", "object_id", "action", "actor")
    }
    chosen = audit.EventFilter(**{k: (v or None) for k, v in values.items()})
    try:
        after = _number(before, "before")
    except InvalidInput as error:
        return page.error(422, str(error))
    verdict = kept = None
    errors: dict[str, str] = {}
    checkpoints: list[verification.Checkpoint] = []
    if verify and checkpoint.strip():
        try:
            checkpoints = verification.parse_checkpoints(checkpoint)
        except InvalidInput as error:
            errors["checkpoint"] = error.message_in(page.language)
    with page.api.transaction() as session:
        events = audit.read_events(
            session=session, chosen=chosen, newest_first=True, after_seq=after, limit=PAGE_ROWS + 1
        )
        if verify and not errors:
            try:
                verdict = verification.verify_chain(session=session, checkpoints=checkpoints)
            except InvalidInput as error:
                errors["checkpoint"] = error.message_in(page.language)
        if verdict is not None and verdict.intact:
            kept = verification.take_checkpoint(session=session, verified=verdict)
    shown = [
        {
            "seq": e.seq,
            "at": e.occurred_at,
            "actor": e.actor,
            "action": e.action,
            "object": f"{e.object_type} {e.object_id}",
            "payload": audit.payload_of(e),
        }
        for e in events[:PAGE_ROWS]
    ]
    more = shown[-1]["seq"] if len(events) > PAGE_ROWS else None
    query = urlencode({k: v for k, v in values.items() if v})
    return page.render(
        "audit.html",
        code=422 if errors else 200,
        events=shown,
        more=more,
        verdict=verdict,
        values=values,
        query=query,
        errors=errors,
        checkpoint=checkpoint,
        checked_against=len(checkpoints),
        kept=kept.as_line() if kept else None,
    )
