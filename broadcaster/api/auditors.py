"""Routes for auditors: the delivery log (pages and a CSV export) and the audit trail.

Read-only, for auditors and admins. Lists are paged by an opaque cursor, a keyset on the
primary key (see `broadcaster.dispatch.log`), so the millionth page costs what the first
does. A cursor, a filter or a limit that does not parse is a 422 naming the parameter.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any, Literal, NoReturn

from fastapi import APIRouter, Query
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from broadcaster.alerts.models import CapStatus
from broadcaster.api.deps import staff
from broadcaster.api.schemas import Body, IsoDateTime
from broadcaster.api.strict_json import StrictJsonRoute
from broadcaster.audit import trail as audit
from broadcaster.audit import verification
from broadcaster.audit.models import AuditEvent
from broadcaster.db.engine import utcnow
from broadcaster.dispatch import log as delivery_log
from broadcaster.dispatch.log import DeliveryFilter, LoggedDelivery
from broadcaster.dispatch.models import DeliveryStatus
from broadcaster.errors import Conflict, InvalidInput
from broadcaster.http.support import ApiDep
from broadcaster.staff.models import Operator
from broadcaster.staff.permissions import Action
from broadcaster.wording import refusal
from channels import Channel

router = APIRouter(
    tags=["auditors"],
    route_class=StrictJsonRoute,
    responses={
        401: {"description": "No valid staff token."},
        403: {"description": "The token's holder is neither an auditor nor an admin."},
    },
)

LogReader = Annotated[Operator, staff(Action.READ_DELIVERY_LOG)]
TrailReader = Annotated[Operator, staff(Action.READ_AUDIT_TRAIL)]

MAX_ALERT_ID = 2**31 - 1
MAX_KEY = 2**63 - 1
DEFAULT_PAGE = 100
# Printable text only: a NUL byte is no value PostgreSQL can compare with.
PRINTABLE = r"^[^\x00-\x1f\x7f]*$"


# Cursors --------------------------------------------------------------------------------


def _cursor(kind: str, key: int) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{key}".encode()).decode().rstrip("=")


def _cursor_key(kind: str, cursor: str | None) -> int | None:
    """The key a cursor of list `kind` carries; a 422 naming `cursor` for anything else,
    including a cursor of another list (or of the same list in the other order). An
    empty cursor, as a form sends one, is the first page."""
    if not cursor:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except ValueError:
        text = ""
    found = re.fullmatch(rf"{re.escape(kind)}:([0-9]{{1,19}})", text)
    if found is None or not 0 < int(found[1]) <= MAX_KEY:
        _refuse("cursor", "is not a cursor handed out by this list", cursor)
    return int(found[1])


def _refuse(parameter: str, message: str, value: object) -> NoReturn:
    raise RequestValidationError(
        [{"type": "value_error", "loc": ("query", parameter), "msg": message, "input": value}]
    )


@contextmanager
def _query_errors(values: dict[str, object]) -> Iterator[None]:
    """The domain's InvalidInput about a query parameter, as FastAPI reports one."""
    try:
        yield
    except InvalidInput as error:
        _refuse(error.field, error.message, values.get(error.field))


# The delivery log -----------------------------------------------------------------------


class DeliveryFilters(BaseModel):
    """Filters of the delivery log; see `broadcaster.dispatch.log` for what each means."""

    model_config = ConfigDict(extra="forbid")

    alert: int | None = Field(None, ge=1, le=MAX_ALERT_ID, description="An alert's id.")
    channel: Channel | None = None
    status: DeliveryStatus | None = Field(None, description="The delivery's status now.")
    district: str | None = Field(
        None,
        max_length=32,
        pattern=r"^[a-z-]+$",
        description=(
            "A district's slug: deliveries of alerts meant for it (targeted, or the whole "
            "city) to residents subscribed to the alert's topic there now. Erased residents "
            "hold no subscriptions and match no district."
        ),
    )
    created_from: IsoDateTime | None = Field(
        None, alias="from", description="Created at or after (with a UTC offset)."
    )
    created_to: IsoDateTime | None = Field(
        None, alias="to", description="Created before (with a UTC offset)."
    )


class DeliveryPageQuery(DeliveryFilters):
    cursor: str | None = Field(
        None, max_length=64, description="`next_cursor` of the previous page."
    )
    limit: int = Field(DEFAULT_PAGE, ge=1, le=delivery_log.MAX_PAGE)


class DeliveryRow(BaseModel):
    delivery_id: int
    alert_id: int
    exercise: bool = Field(description="The alert was an Exercise or a Test, not Actual.")
    cap_status: CapStatus
    channel: str
    contact: str = Field(description='The contact point, masked; "(erased)" once erased.')
    language: str
    status: DeliveryStatus
    attempts: int
    error_code: str | None
    reason: str | None
    created_at: datetime
    claimed_at: datetime | None
    sent_at: datetime | None
    finished_at: datetime | None
    next_attempt_at: datetime | None

    @classmethod
    def of(cls, row: LoggedDelivery) -> DeliveryRow:
        return cls.model_validate(row, from_attributes=True)


class DeliveryPageOut(BaseModel):
    items: list[DeliveryRow]
    next_cursor: str | None = Field(description="Absent on the last page.")


def _checked_filter(session: Session, filters: DeliveryFilters) -> DeliveryFilter:
    with _query_errors(filters.model_dump(by_alias=True)):
        return delivery_log.build_filter(
            session=session,
            alert_id=filters.alert,
            channel=filters.channel,
            status=filters.status,
            district=filters.district,
            created_from=filters.created_from,
            created_to=filters.created_to,
        )


@router.get("/deliveries", response_model=DeliveryPageOut)
def list_deliveries(
    api: ApiDep, _me: LogReader, query: Annotated[DeliveryPageQuery, Query()]
) -> DeliveryPageOut:
    """The delivery log, oldest first, a page at a time."""
    after = _cursor_key("deliveries", query.cursor)
    with api.transaction() as session:
        chosen = _checked_filter(session, query)
        page = delivery_log.read_page(
            session=session, chosen=chosen, after=after, limit=query.limit
        )
    return DeliveryPageOut(
        items=[DeliveryRow.of(row) for row in page.rows],
        next_cursor=None if page.next_after is None else _cursor("deliveries", page.next_after),
    )


class CsvResponse(StreamingResponse):
    media_type = "text/csv"


@router.get(
    "/deliveries.csv",
    response_class=CsvResponse,
    responses={
        200: {
            "description": "The matching deliveries as CSV, a header row first.",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        }
    },
)
def export_deliveries(
    api: ApiDep, _me: LogReader, filters: Annotated[DeliveryFilters, Query()]
) -> CsvResponse:
    """The delivery log as a CSV download, streamed: every matching row, oldest first."""
    with api.transaction() as session:
        chosen = _checked_filter(session, filters)
    rows = delivery_log.export(sessions=api.sessions, chosen=chosen)
    filename = f"deliveries-{utcnow():%Y%m%dT%H%M%SZ}.csv"
    return CsvResponse(
        delivery_log.csv_chunks(rows),
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


# The audit trail ------------------------------------------------------------------------


class AuditQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    object_type: str | None = Field(None, max_length=32, pattern=PRINTABLE)
    object_id: str | None = Field(None, max_length=64, pattern=PRINTABLE)
    action: str | None = Field(None, max_length=64, pattern=PRINTABLE)
    actor: str | None = Field(
        None, max_length=64, pattern=PRINTABLE, description='Such as "operator:3".'
    )
    order: Literal["newest", "oldest"] = "newest"
    cursor: str | None = Field(
        None, max_length=64, description="`next_cursor` of the previous page."
    )
    limit: int = Field(DEFAULT_PAGE, ge=1, le=delivery_log.MAX_PAGE)


class AuditEventOut(BaseModel):
    seq: int
    occurred_at: datetime
    actor: str
    action: str
    object_type: str
    object_id: str
    payload: dict[str, Any] | str = Field(
        description="The JSON object written; its stored text when that is no longer one "
        "(`/audit/verify` then names the record)."
    )
    hash: str
    prev_hash: str

    @classmethod
    def of(cls, event: AuditEvent) -> AuditEventOut:
        return cls(
            seq=event.seq,
            occurred_at=event.occurred_at,
            actor=event.actor,
            action=event.action,
            object_type=event.object_type,
            object_id=event.object_id,
            payload=audit.payload_of(event),
            hash=event.hash,
            prev_hash=event.prev_hash,
        )


class AuditPageOut(BaseModel):
    items: list[AuditEventOut]
    next_cursor: str | None = Field(description="Absent on the last page.")


@router.get("/audit", response_model=AuditPageOut)
def list_audit_events(
    api: ApiDep, _me: TrailReader, query: Annotated[AuditQuery, Query()]
) -> AuditPageOut:
    """The audit trail as stored, newest first unless `order=oldest`, a page at a time."""
    kind = f"audit-{query.order}"
    after = _cursor_key(kind, query.cursor)
    chosen = audit.EventFilter(
        object_type=query.object_type,
        object_id=query.object_id,
        action=query.action,
        actor=query.actor,
    )
    with api.transaction() as session:
        events = audit.read_events(
            session=session,
            chosen=chosen,
            newest_first=query.order == "newest",
            after_seq=after,
            limit=query.limit + 1,
        )
    shown = events[: query.limit]
    more = len(events) > query.limit
    return AuditPageOut(
        items=[AuditEventOut.of(event) for event in shown],
        next_cursor=_cursor(kind, shown[-1].seq) if more else None,
    )


class ChainVerdict(BaseModel):
    intact: bool
    checked: int = Field(description="Records found sound, from the first on.")
    broken_seq: int | None = None
    broken_id: int | None = None
    problem: str | None = None
    problems: dict[str, str] = Field(
        default_factory=dict, description="The problem in Polish, English and Ukrainian."
    )
    summary: str
    checkpoints: int = Field(0, description="Checkpoints the chain was checked against.")

    @classmethod
    def of(cls, verdict: verification.Verification, checkpoints: int = 0) -> ChainVerdict:
        return cls(
            intact=verdict.intact,
            checked=verdict.checked,
            broken_seq=verdict.broken_seq,
            broken_id=verdict.broken_id,
            problem=verdict.problem,
            problems=dict(verdict.problems),
            summary=verdict.describe(),
            checkpoints=checkpoints,
        )


class CheckpointOut(BaseModel):
    audit_checkpoint: Literal[1] = 1
    seq: int
    hash: str
    taken_at: datetime
    seal: str


class CheckpointsIn(Body):
    checkpoints: list[dict[str, Any]] = Field(
        min_length=1,
        max_length=100,
        description="Checkpoints as `/audit/checkpoint` (or `broadcaster audit checkpoint`) "
        "gave them. The newest one held is enough: the hash it saw covers every record "
        "before it.",
    )


@router.get("/audit/verify", response_model=ChainVerdict)
def verify_audit_chain(api: ApiDep, _me: TrailReader) -> ChainVerdict:
    """Walk the whole chain and check its sealed tip: intact with the number of records,
    or the first broken one."""
    with api.transaction() as session:
        return ChainVerdict.of(verification.verify_chain(session=session))


@router.post("/audit/verify", response_model=ChainVerdict)
def verify_audit_chain_against(api: ApiDep, _me: TrailReader, body: CheckpointsIn) -> ChainVerdict:
    """As `GET /audit/verify`, and each record a checkpoint saw must still be there with
    the hash it had: records cut after a checkpoint was taken show. A checkpoint not issued
    by this trail is a 422 naming it."""
    checkpoints = []
    for number, item in enumerate(body.checkpoints):
        try:
            checkpoints.append(verification.checkpoint_of(item))
        except (ValueError, TypeError, KeyError):
            raise refusal(f"checkpoints.{number}", "audit.not_a_checkpoint") from None
    with api.transaction() as session:
        verdict = verification.verify_chain(session=session, checkpoints=checkpoints)
    return ChainVerdict.of(verdict, len(checkpoints))


@router.get("/audit/checkpoint", response_model=CheckpointOut)
def audit_checkpoint(api: ApiDep, _me: TrailReader) -> CheckpointOut:
    """The chain verified, a checkpoint of its tip, to keep outside the database and hand
    back to `POST /audit/verify`. A 409 when the chain does not verify."""
    with api.transaction() as session:
        checkpoint = verification.take_checkpoint(session=session)
    if checkpoint is None:
        raise Conflict("the audit trail does not verify, so no checkpoint: verify the chain")
    return CheckpointOut(
        seq=checkpoint.seq, hash=checkpoint.hash, taken_at=checkpoint.taken_at, seal=checkpoint.seal
    )
