"""Alerts over HTTP: write, preview, submit, approve or reject, schedule, cancel, follow.

Roles are checked twice: here, before the body is read (401/403), and again in the
lifecycle functions, which also apply the rules about objects: only the author edits,
schedules or submits a draft, and nobody who wrote it approves it.

Past 400 lines, kept whole: every route of the one resource, each a thin call into the
alert services with its request and answer models beside it, read as the API document is.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Response
from pydantic import BaseModel, Field

from broadcaster.alerts import drafts, follow_ups, idempotency, lifecycle
from broadcaster.alerts import services as alerts
from broadcaster.alerts.messages import preview_alert
from broadcaster.alerts.models import Alert, AlertStatus, CapStatus, MsgType, Severity, Urgency
from broadcaster.api.deps import staff
from broadcaster.api.schemas import Body, IsoDateTime, ObjectId, PlainText
from broadcaster.api.strict_json import StrictJsonRoute
from broadcaster.dispatch import progress
from broadcaster.http.support import ApiDep
from broadcaster.reference.models import Language
from broadcaster.staff.models import Operator
from broadcaster.staff.permissions import Action
from channels import Channel

router = APIRouter(prefix="/alerts", tags=["alerts"], route_class=StrictJsonRoute)

Writer = Annotated[Operator, staff(Action.WRITE_ALERTS)]
Reviewer = Annotated[Operator, staff(Action.REVIEW_ALERTS)]
Canceller = Annotated[Operator, staff(Action.CANCEL_ALERTS)]
Reader = Annotated[Operator, staff(Action.READ_ALERTS)]


class Texts(Body):
    """Checked by the alert service's text rule (broadcaster/texts.py), as on every face:
    a title's line breaks fold to a space, a body's become LF, controls are refused, and
    the lengths are counted on the text so normalised (a CR LF is one character), as the
    console's are; the raw bound only keeps a request's size in reason."""

    title: str = Field(
        max_length=4 * drafts.TITLE_MAX,
        description=f"At most {drafts.TITLE_MAX} characters once its line breaks fold.",
    )
    body: str = Field(
        max_length=4 * drafts.BODY_MAX,
        description=f"At most {drafts.BODY_MAX} characters once each line break is one LF.",
    )


class AlertIn(Body):
    """An alert as its operator writes it. Polish text is required: every resident without
    a translation in their language receives it."""

    topic: PlainText = Field(max_length=32, examples=["weather-warning"])
    districts: list[Annotated[PlainText, Field(max_length=32)]] = Field(
        default_factory=list, max_length=18, examples=[["wola", "bemowo"]]
    )
    whole_city: bool = False
    severity: Severity
    urgency: Urgency
    cap_status: CapStatus = Field(
        default=CapStatus.ACTUAL,
        description="Exercise and Test alerts reach only the test audience.",
    )
    channels: list[Channel] = Field(min_length=1, max_length=3)
    contents: dict[Language, Texts]
    transliterate_sms: bool = False
    send_at: IsoDateTime | None = None
    expires_at: IsoDateTime | None = None

    def draft(self) -> drafts.AlertDraft:
        return drafts.AlertDraft(
            topic=self.topic,
            severity=self.severity.value,
            urgency=self.urgency.value,
            cap_status=self.cap_status.value,
            channels=[channel.value for channel in self.channels],
            contents={lang.value: (t.title, t.body) for lang, t in self.contents.items()},
            districts=list(self.districts),
            whole_city=self.whole_city,
            transliterate_sms=self.transliterate_sms,
            send_at=self.send_at,
            expires_at=self.expires_at,
        )


class FollowUpIn(Body):
    """An Update or Cancel of an alert already sent: it goes, after its own approval, to
    exactly the people who received the original, on the channel that reached them.
    Topic, districts and channels are the original's."""

    msg_type: Literal[MsgType.UPDATE, MsgType.CANCEL]
    contents: dict[Language, Texts]
    severity: Severity | None = Field(default=None, description="An Update may change it.")
    urgency: Urgency | None = Field(default=None, description="An Update may change it.")
    expires_at: IsoDateTime | None = None


class Reason(Body):
    reason: PlainText = Field(min_length=1, max_length=1000)


class Schedule(Body):
    send_at: IsoDateTime | None = Field(
        description="When the alert goes once approved; null: as soon as it is approved."
    )


class TextsOut(BaseModel):
    title: str
    body: str


Outcome = Literal[
    "draft",
    "awaiting_approval",
    "approved",
    "dispatching",
    "done",
    "done_with_failures",
    "cancelled",
    "expired",
]
OUTCOME = Field(
    description="What the status reads as: `done_with_failures` instead of `done` when any "
    "message ended failed (`failed` says how many)."
)


class AlertOut(BaseModel):
    id: int
    status: AlertStatus
    outcome: Outcome = OUTCOME
    failed: int = Field(description="Messages that ended failed, over every channel.")
    msg_type: MsgType
    references_id: int | None
    exercise: bool
    topic: str
    districts: list[str] | Literal["*"]
    severity: Severity
    urgency: Urgency
    cap_status: CapStatus
    channels: list[Channel]
    transliterate_sms: bool
    contents: dict[Language, TextsOut]
    author_id: int
    editor_ids: list[int]
    submitted_by_id: int | None
    approver_id: int | None
    cancelled_by_id: int | None
    send_at: datetime | None
    expires_at: datetime
    created_at: datetime
    submitted_at: datetime | None
    approved_at: datetime | None
    cancelled_at: datetime | None
    dispatched_at: datetime | None
    finished_at: datetime | None
    status_reason: str | None


class AlertPage(BaseModel):
    items: list[AlertOut]
    next_cursor: int | None = Field(description="Pass as `before` for the next page.")


class SmsProblem(BaseModel):
    field: str = Field(description="The text the variant is made of.")
    messages: dict[Language, str] = Field(description="What is wrong, in each language.")
    remedy: dict[Language, str] = Field(description="What to do about it, in each language.")


class SmsVariant(BaseModel):
    text: str
    encoding: str
    characters: int
    parts: int
    recipients: int
    total_parts: int
    limit: int = Field(description="The most parts the provider accepts (WSP_SMS_MAX_PARTS).")
    over_limit: bool = Field(description="Needs more parts than the limit: cannot be approved.")
    problem: SmsProblem | None


class PushVariant(BaseModel):
    title: str
    body: str
    recipients: int


class EmailVariant(BaseModel):
    subject: str
    text: str = Field(description="The plain-text part, with a placeholder unsubscribe link.")
    recipients: int


class Variant(BaseModel):
    sms: SmsVariant | None = None
    push: PushVariant | None = None
    email: EmailVariant | None = None


class SmsSummary(BaseModel):
    limit: int
    over_limit: list[Language] = Field(
        description="Languages whose SMS is over the limit; approval refuses the alert."
    )
    recipients: int
    total_parts: int
    transliterated: bool
    estimated_cost_pln: str | None


class Preview(BaseModel):
    alert_id: int
    exercise: bool
    audience: dict[Channel, int]
    audience_by_district: dict[str, dict[Channel, int]] = Field(
        description="Contact points following the topic in each district; a resident "
        "following it in several districts counts in each."
    )
    variants: dict[Language, Variant]
    sms: SmsSummary


class Progress(BaseModel):
    alert_id: int
    status: AlertStatus
    outcome: Outcome = OUTCOME
    msg_type: MsgType
    exercise: bool
    finished: bool
    channels: dict[Channel, dict[str, int]] = Field(description="channel -> status -> messages")
    totals: dict[str, int] = Field(description="status -> messages, all channels")


def _out(alert: Alert) -> AlertOut:
    return AlertOut.model_validate(alerts.describe_alert(alert))


@router.post(
    "",
    status_code=201,
    response_model=AlertOut,
    responses={200: {"model": AlertOut, "description": "A repeat of an earlier request"}},
)
def create_alert(
    body: AlertIn,
    me: Writer,
    api: ApiDep,
    response: Response,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias=idempotency.HEADER,
            max_length=255,
            description="The same key again returns the same alert; with another body, 422.",
        ),
    ] = None,
) -> AlertOut:
    def create() -> Alert:
        return alerts.create_alert(
            session=session, settings=api.settings, author=me, draft=body.draft()
        )

    if idempotency_key is None:
        with api.transaction() as session:
            return _out(create())
    for _ in range(2):
        try:
            with api.transaction() as session:
                alert, created = idempotency.create_once(
                    session=session,
                    operator=me,
                    key=idempotency_key,
                    body=body.model_dump(mode="json"),
                    create=create,
                )
                out = _out(alert)
        except idempotency.KeyRace:
            continue
        if not created:
            response.status_code = 200
        return out
    raise idempotency.KeyRace()  # pragma: no cover - the winner's key is committed by now


@router.get("", response_model=AlertPage)
def list_alerts(
    _me: Reader,
    api: ApiDep,
    status: Annotated[list[AlertStatus] | None, Query(description="Any of these")] = None,
    before: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> AlertPage:
    """Newest first; approvers find their queue with `status=awaiting_approval`."""
    with api.transaction() as session:
        # One more than asked tells whether another page follows, without a count.
        found = alerts.list_alerts(
            session=session, statuses=status or (), before=before, limit=limit + 1
        )
        items = [
            AlertOut.model_validate(view) for view in alerts.describe_alerts(session, found[:limit])
        ]
    return AlertPage(items=items, next_cursor=items[-1].id if len(found) > limit else None)


@router.get("/{alert_id}", response_model=AlertOut)
def get_alert(alert_id: ObjectId, _me: Reader, api: ApiDep) -> AlertOut:
    with api.transaction() as session:
        return _out(alerts.get_alert(session=session, alert_id=alert_id))


@router.put("/{alert_id}", response_model=AlertOut)
def edit_alert(alert_id: ObjectId, body: AlertIn, me: Writer, api: ApiDep) -> AlertOut:
    """Replace a draft's text and targeting (its author, or an admin)."""
    with api.transaction() as session:
        return _out(
            alerts.edit_draft(
                session=session,
                settings=api.settings,
                editor=me,
                alert_id=alert_id,
                draft=body.draft(),
            )
        )


@router.get("/{alert_id}/preview", response_model=Preview)
def preview(alert_id: ObjectId, _me: Reader, api: ApiDep) -> Any:
    """Every message as residents will see it, who gets which, and the SMS cost."""
    with api.transaction() as session:
        alert = alerts.get_alert(session=session, alert_id=alert_id)
        return preview_alert(
            session=session,
            alert=alert,
            sms_max_parts=api.settings.sms_max_parts,
            sms_part_price=api.settings.sms_part_price,
        )


@router.post("/{alert_id}/schedule", response_model=AlertOut)
def schedule(alert_id: ObjectId, body: Schedule, me: Writer, api: ApiDep) -> AlertOut:
    with api.transaction() as session:
        return _out(
            alerts.schedule_alert(
                session=session, actor=me, alert_id=alert_id, send_at=body.send_at
            )
        )


@router.post("/{alert_id}/submit", response_model=AlertOut)
def submit(alert_id: ObjectId, me: Writer, api: ApiDep) -> AlertOut:
    with api.transaction() as session:
        return _out(
            lifecycle.submit_alert(
                session=session, settings=api.settings, actor=me, alert_id=alert_id
            )
        )


@router.post("/{alert_id}/approve", response_model=AlertOut)
def approve(alert_id: ObjectId, me: Reviewer, api: ApiDep) -> AlertOut:
    """Four eyes: never by whoever wrote, edited or submitted the alert."""
    with api.transaction() as session:
        approved = lifecycle.approve_alert(
            session=session, settings=api.settings, approver=me, alert_id=alert_id
        )
        out = _out(approved)
    api.start_planning(approved)
    return out


@router.post("/{alert_id}/reject", response_model=AlertOut)
def reject(alert_id: ObjectId, body: Reason, me: Reviewer, api: ApiDep) -> AlertOut:
    with api.transaction() as session:
        return _out(
            lifecycle.reject_alert(
                session=session, approver=me, alert_id=alert_id, reason=body.reason
            )
        )


@router.post("/{alert_id}/cancel", response_model=AlertOut)
def cancel(alert_id: ObjectId, body: Reason, me: Canceller, api: ApiDep) -> AlertOut:
    """Stop the alert; messages not yet handed to a provider are not sent."""
    with api.transaction() as session:
        return _out(
            lifecycle.cancel_alert(session=session, actor=me, alert_id=alert_id, reason=body.reason)
        )


@router.post("/{alert_id}/follow-ups", status_code=201, response_model=AlertOut)
def follow_up(alert_id: ObjectId, body: FollowUpIn, me: Writer, api: ApiDep) -> AlertOut:
    """Write an Update or Cancel of this alert, as a draft for the usual four eyes. A
    Cancel of an alert still going out also stops it at once."""
    with api.transaction() as session:
        return _out(
            follow_ups.create_follow_up(
                session=session,
                settings=api.settings,
                author=me,
                original_id=alert_id,
                msg_type=body.msg_type.value,
                contents={lang.value: (t.title, t.body) for lang, t in body.contents.items()},
                severity=body.severity.value if body.severity else None,
                urgency=body.urgency.value if body.urgency else None,
                expires_at=body.expires_at,
            )
        )


@router.get("/{alert_id}/progress", response_model=Progress)
def alert_progress(alert_id: ObjectId, _me: Reader, api: ApiDep) -> Progress:
    """Messages per channel and status, read from counters kept with the deliveries: a
    few rows at any audience size, so it can be polled."""
    with api.transaction() as session:
        alert = alerts.get_alert(session=session, alert_id=alert_id)
        by_channel = progress.read(session, alert.id)
    totals = progress.totals(by_channel)
    return Progress(
        alert_id=alert.id,
        status=alert.status,
        outcome=alerts.outcome_of(alert.status, totals.get("failed", 0)),
        msg_type=alert.msg_type,
        exercise=alert.cap_status is not CapStatus.ACTUAL,
        finished=alert.status not in lifecycle.LIVE,
        channels={Channel(channel): statuses for channel, statuses in by_channel.items()},
        totals=totals,
    )
