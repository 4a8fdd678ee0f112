"""Alerts and their lifecycle.

    draft -> awaiting_approval -> approved -> dispatching -> done
      ^            |  (reject)
      +------------+
    any live state -> cancelled;  past `expires_at` -> expired

Every move is one guarded UPDATE (`WHERE status IN (<allowed>)`), so two people acting on
the same alert at once cannot both win: the loser gets Conflict. Four eyes: an alert is
approved by an approver (or admin) who is not its author.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy import select, update
from sqlalchemy.orm import Session, selectinload

from broadcaster.alerts.messages import check_sms_parts
from broadcaster.alerts.models import (
    Alert,
    AlertContent,
    AlertStatus,
    CapStatus,
    MsgType,
    Severity,
    Urgency,
)
from broadcaster.audit import trail as audit
from broadcaster.db.engine import utcnow
from broadcaster.dispatch import progress
from broadcaster.dispatch.states import DeliveryStateMachine, SuppressReason
from broadcaster.errors import Conflict, Forbidden, InvalidInput, NotFound
from broadcaster.reference.models import FALLBACK_LANGUAGE, District, Language, Topic
from broadcaster.reference.services import resolve_slugs
from broadcaster.settings import Settings
from broadcaster.staff.models import Operator
from broadcaster.staff.operators import actor_of
from broadcaster.staff.permissions import Action, may_act_on_draft, require, second_person
from broadcaster.texts import body_text, reason_text, title_text
from channels import Channel

E = TypeVar("E", bound=StrEnum)

TITLE_MAX = 200
BODY_MAX = 2000

S = AlertStatus
LIVE = frozenset({S.DRAFT, S.AWAITING_APPROVAL, S.APPROVED, S.DISPATCHING})


class Move(StrEnum):
    SUBMIT = "submit"
    APPROVE = "approve"
    REJECT = "reject"
    START_DISPATCH = "start_dispatch"
    FINISH = "finish"
    CANCEL = "cancel"
    EXPIRE = "expire"


# move -> (states it may start from, state it ends in)
MOVES: dict[Move, tuple[frozenset[AlertStatus], AlertStatus]] = {
    Move.SUBMIT: (frozenset({S.DRAFT}), S.AWAITING_APPROVAL),
    Move.APPROVE: (frozenset({S.AWAITING_APPROVAL}), S.APPROVED),
    Move.REJECT: (frozenset({S.AWAITING_APPROVAL}), S.DRAFT),
    Move.START_DISPATCH: (frozenset({S.APPROVED}), S.DISPATCHING),
    Move.FINISH: (frozenset({S.DISPATCHING}), S.DONE),
    Move.CANCEL: (LIVE, S.CANCELLED),
    Move.EXPIRE: (LIVE, S.EXPIRED),
}


@dataclass(frozen=True, slots=True)
class AlertDraft:
    """What an operator writes. `contents` maps a language to (title, body); Polish is
    required, as the text every resident without a translation receives."""

    topic: str
    severity: str
    urgency: str
    channels: Sequence[str]
    contents: Mapping[str, tuple[str, str]]
    districts: Sequence[str] = ()
    whole_city: bool = False
    cap_status: str = CapStatus.ACTUAL
    transliterate_sms: bool = False
    send_at: datetime | None = None
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class CheckedDraft:
    topic_id: int
    district_ids: list[int]
    whole_city: bool
    severity: Severity
    urgency: Urgency
    cap_status: CapStatus
    channels: list[str]
    transliterate_sms: bool
    contents: dict[str, tuple[str, str]]
    send_at: datetime | None
    expires_at: datetime
    summary: dict[str, Any] = field(default_factory=dict)


def _enum(kind: type[E], value: object, field_name: str) -> E:
    try:
        return kind(str(value))
    except ValueError:
        choices = ", ".join(member.value for member in kind)
        raise InvalidInput(field_name, f"must be one of {choices}") from None


def _aware(value: object, field_name: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise InvalidInput(field_name, "must be a date and time")
    if value.tzinfo is None:
        raise InvalidInput(field_name, "needs a time zone")
    return value


def _names(value: object, field_name: str) -> list[str]:
    """A list of names; a lone string is refused rather than read letter by letter."""
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise InvalidInput(field_name, "must be a list")
    if not all(isinstance(item, str) for item in value):
        raise InvalidInput(field_name, "must be a list of names")
    return list(value)


def _texts(value: object, language: str) -> tuple[str, str]:
    if (
        not isinstance(value, list | tuple)
        or len(value) != 2
        or not all(isinstance(part, str) for part in value)
    ):
        raise InvalidInput(f"contents.{language}", "give a title and a body, both text")
    # The one text rule of every face: broadcaster/texts.py.
    return (
        title_text(value[0], f"contents.{language}.title"),
        body_text(value[1], f"contents.{language}.body"),
    )


def check_draft(
    *, session: Session, settings: Settings, draft: AlertDraft, now: datetime
) -> CheckedDraft:
    """Validate everything before anything is written; the first problem names its field."""
    if not isinstance(draft.topic, str):
        raise InvalidInput("topic", "must be a topic name")
    topic_id = resolve_slugs(session=session, model=Topic, slugs=[draft.topic], field="topic")[0]
    districts = _names(draft.districts, "districts")
    if draft.whole_city:
        if districts:
            raise InvalidInput("districts", "must be empty for a whole-city alert")
        district_ids: list[int] = []
    else:
        if not districts:
            raise InvalidInput("districts", "name at least one district, or target the whole city")
        district_ids = resolve_slugs(
            session=session, model=District, slugs=districts, field="districts"
        )
    severity = _enum(Severity, draft.severity, "severity")
    urgency = _enum(Urgency, draft.urgency, "urgency")
    cap_status = _enum(CapStatus, draft.cap_status, "cap_status")
    requested = _names(draft.channels, "channels")
    if not requested:
        raise InvalidInput("channels", "name at least one channel")
    channels = list(dict.fromkeys(_enum(Channel, c, "channels").value for c in requested))

    if not isinstance(draft.contents, Mapping):
        raise InvalidInput("contents", "must map a language to a title and a body")
    contents: dict[str, tuple[str, str]] = {}
    for language, texts in draft.contents.items():
        lang = _enum(Language, language, "contents")
        title, body = _texts(texts, lang.value)
        if not title:
            raise InvalidInput(f"contents.{lang}.title", "is required")
        if len(title) > TITLE_MAX:
            raise InvalidInput(f"contents.{lang}.title", f"is longer than {TITLE_MAX} characters")
        if not body:
            raise InvalidInput(f"contents.{lang}.body", "is required")
        if len(body) > BODY_MAX:
            raise InvalidInput(f"contents.{lang}.body", f"is longer than {BODY_MAX} characters")
        contents[lang.value] = (title, body)
    if FALLBACK_LANGUAGE not in contents:
        raise InvalidInput(f"contents.{FALLBACK_LANGUAGE}", "a Polish text is required")

    send_at = _aware(draft.send_at, "send_at")
    expires_at = _aware(draft.expires_at, "expires_at")
    if send_at is not None and send_at <= now:
        raise InvalidInput("send_at", "is in the past")
    start = send_at or now
    if expires_at is None:
        expires_at = start + timedelta(hours=settings.default_alert_lifetime_hours)
    elif expires_at <= start:
        raise InvalidInput(
            "expires_at", "must be later than send_at" if send_at else "is in the past"
        )
    return CheckedDraft(
        topic_id=topic_id,
        district_ids=district_ids,
        whole_city=draft.whole_city,
        severity=severity,
        urgency=urgency,
        cap_status=cap_status,
        channels=channels,
        transliterate_sms=bool(draft.transliterate_sms),
        contents=contents,
        send_at=send_at,
        expires_at=expires_at,
        summary={
            "topic": draft.topic,
            "districts": "*" if draft.whole_city else sorted(set(districts)),
            "severity": severity.value,
            "urgency": urgency.value,
            "cap_status": cap_status.value,
            "channels": channels,
            "transliterate_sms": bool(draft.transliterate_sms),
            "languages": sorted(contents),
            "send_at": send_at.isoformat() if send_at else None,
            "expires_at": expires_at.isoformat(),
        },
    )


def apply_draft(alert: Alert, checked: CheckedDraft, session: Session) -> None:
    alert.topic_id = checked.topic_id
    alert.topic = session.get_one(Topic, checked.topic_id)
    alert.whole_city = checked.whole_city
    alert.severity = checked.severity
    alert.urgency = checked.urgency
    alert.cap_status = checked.cap_status
    alert.channels = checked.channels
    alert.transliterate_sms = checked.transliterate_sms
    alert.send_at = checked.send_at
    alert.expires_at = checked.expires_at
    alert.contents = [
        AlertContent(language=lang, title=title, body=body)
        for lang, (title, body) in sorted(checked.contents.items())
    ]
    alert.districts = [
        session.get_one(District, district_id) for district_id in sorted(checked.district_ids)
    ]


def create_alert(
    *, session: Session, settings: Settings, author: Operator, draft: AlertDraft
) -> Alert:
    require(author, Action.WRITE_ALERTS)
    checked = check_draft(session=session, settings=settings, draft=draft, now=utcnow())
    return add_alert(session=session, settings=settings, author=author, checked=checked)


def add_alert(
    *,
    session: Session,
    settings: Settings,
    author: Operator,
    checked: CheckedDraft,
    msg_type: MsgType = MsgType.ALERT,
    references_id: int | None = None,
) -> Alert:
    """Write a checked draft as a new draft alert by `author` and audit its creation.

    Shared by `create_alert` and `follow_ups.create_follow_up`, which check the author's
    role and the draft first. A follow-up (`msg_type` update or cancel) names the alert it
    references, and its audit event records both. Nothing is written for an alert whose
    SMS would be over the parts limit (`messages.check_sms_parts`).
    """
    alert = Alert(
        author_id=author.id,
        status=AlertStatus.DRAFT,
        editor_ids=[author.id],
        msg_type=msg_type,
        references_id=references_id,
    )
    apply_draft(alert, checked, session)
    check_sms_parts(alert=alert, limit=settings.sms_max_parts)
    session.add(alert)
    session.flush()
    payload = checked.summary
    if msg_type is not MsgType.ALERT:
        payload = {**payload, "msg_type": msg_type.value, "references": references_id}
    audit.record(
        session=session,
        actor=actor_of(author),
        action="alert.created",
        object_type="alert",
        object_id=alert.id,
        payload=payload,
    )
    return alert


def list_alerts(
    *,
    session: Session,
    statuses: Sequence[AlertStatus] = (),
    before: int | None = None,
    limit: int = 50,
) -> list[Alert]:
    """Newest first, any of `statuses` (all when none), ids below `before`: a keyset page,
    with texts and districts read in one query each for the whole page."""
    query = (
        select(Alert)
        .options(selectinload(Alert.contents), selectinload(Alert.districts))
        .order_by(Alert.id.desc())
        .limit(limit)
    )
    if statuses:
        query = query.where(Alert.status.in_(list(statuses)))
    if before is not None:
        query = query.where(Alert.id < before)
    return list(session.scalars(query).unique())


def get_alert(*, session: Session, alert_id: int) -> Alert:
    alert = session.get(Alert, alert_id)
    if alert is None:
        raise NotFound("alert", alert_id)
    return alert


def _keep_follow_up_targeting(alert: Alert, draft: AlertDraft) -> None:
    """An Update or Cancel goes to whoever received its original, as the original went:
    only its text (and an Update's severity and urgency) may change."""
    fixed: list[tuple[str, object, object]] = [
        ("topic", draft.topic, alert.topic.slug),
        ("whole_city", bool(draft.whole_city), alert.whole_city),
        ("districts", sorted(draft.districts), sorted(d.slug for d in alert.districts)),
        ("channels", sorted(draft.channels), sorted(alert.channels)),
        ("cap_status", draft.cap_status, alert.cap_status.value),
    ]
    if alert.msg_type is MsgType.CANCEL:
        fixed += [
            ("severity", draft.severity, alert.severity.value),
            ("urgency", draft.urgency, alert.urgency.value),
        ]
    for field_name, wanted, kept in fixed:
        if wanted != kept:
            raise InvalidInput(field_name, f"a {alert.msg_type.value} keeps the original's")


def edit_draft(
    *, session: Session, settings: Settings, editor: Operator, alert_id: int, draft: AlertDraft
) -> Alert:
    """Replace a draft's content and targeting; only its author (or an admin) may."""
    require(editor, Action.WRITE_ALERTS)
    alert = get_alert(session=session, alert_id=alert_id)
    if not may_act_on_draft(editor, author_id=alert.author_id):
        raise Forbidden("only the author edits a draft")
    if alert.msg_type is not MsgType.ALERT:
        _keep_follow_up_targeting(alert, draft)
    checked = check_draft(session=session, settings=settings, draft=draft, now=utcnow())
    # Lock the row while it is still a draft: a submit racing this edit either waits for
    # it or makes it fail, so no approved alert ever carries text nobody reviewed.
    locked = session.execute(
        update(Alert)
        .where(Alert.id == alert.id, Alert.status == AlertStatus.DRAFT)
        .values(status=AlertStatus.DRAFT)
        .execution_options(synchronize_session=False)
    )
    session.refresh(alert)
    if locked.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict(f"alert {alert.id} is {alert.status}: only a draft can be edited")
    apply_draft(alert, checked, session)
    # Raised before the edit is committed: the face's transaction rolls it back.
    check_sms_parts(alert=alert, limit=settings.sms_max_parts)
    if editor.id not in alert.editor_ids:
        alert.editor_ids = [*alert.editor_ids, editor.id]
    session.flush()
    audit.record(
        session=session,
        actor=actor_of(editor),
        action="alert.edited",
        object_type="alert",
        object_id=alert.id,
        payload=checked.summary,
    )
    return alert


def schedule_alert(
    *, session: Session, actor: Operator, alert_id: int, send_at: datetime | None
) -> Alert:
    """Set when a draft goes out once approved (None: as soon as it is approved).

    Only a draft: the time an approver agreed to is part of what they approved.
    """
    require(actor, Action.WRITE_ALERTS)
    alert = get_alert(session=session, alert_id=alert_id)
    if not may_act_on_draft(actor, author_id=alert.author_id):
        raise Forbidden("only the author schedules a draft")
    moment = _aware(send_at, "send_at")
    if moment is not None:
        if moment <= utcnow():
            raise InvalidInput("send_at", "is in the past")
        if moment >= alert.expires_at:
            raise InvalidInput("send_at", "must be earlier than expires_at")
    locked = session.execute(
        update(Alert)
        .where(Alert.id == alert.id, Alert.status == AlertStatus.DRAFT)
        .values(send_at=moment)
        .execution_options(synchronize_session=False)
    )
    session.refresh(alert)
    if locked.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict(f"alert {alert.id} is {alert.status}: only a draft can be scheduled")
    audit.record(
        session=session,
        actor=actor_of(actor),
        action="alert.scheduled",
        object_type="alert",
        object_id=alert.id,
        payload={"send_at": moment.isoformat() if moment else None},
    )
    return alert


def transition(
    *,
    session: Session,
    alert: Alert,
    move: Move,
    actor: str,
    values: Mapping[str, Any] | None = None,
    payload: Mapping[str, Any] | None = None,
) -> Alert:
    """Make `move` with one guarded UPDATE, audit it, and refresh `alert`."""
    sources, target = MOVES[move]
    result = session.execute(
        update(Alert)
        .where(Alert.id == alert.id, Alert.status.in_(sources))
        .values(status=target, **(values or {}))
        .execution_options(synchronize_session=False)
    )
    session.refresh(alert)
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict(f"alert {alert.id} is {alert.status}: cannot {move.value} it")
    audit.record(
        session=session,
        actor=actor,
        action=f"alert.{move.value}",
        object_type="alert",
        object_id=alert.id,
        payload={"status": target.value, **(payload or {})},
    )
    return alert


def submit_alert(*, session: Session, settings: Settings, actor: Operator, alert_id: int) -> Alert:
    """Send a draft for approval; one the provider would refuse is kept a draft."""
    require(actor, Action.WRITE_ALERTS)
    alert = get_alert(session=session, alert_id=alert_id)
    if not may_act_on_draft(actor, author_id=alert.author_id):
        raise Forbidden("only the author submits a draft")
    now = utcnow()
    if alert.expires_at <= now:
        raise Conflict(f"alert {alert.id} expired at {alert.expires_at.isoformat()}")
    if alert.send_at is not None and alert.send_at <= now:
        raise InvalidInput("send_at", "is in the past; edit the schedule first")
    if alert.status is AlertStatus.DRAFT:
        check_sms_parts(alert=alert, limit=settings.sms_max_parts)
    return transition(
        session=session,
        alert=alert,
        move=Move.SUBMIT,
        actor=actor_of(actor),
        values={"submitted_at": now, "submitted_by_id": actor.id, "status_reason": None},
    )


def _require_second_person(alert: Alert, reviewer: Operator) -> None:
    """Four eyes: whoever wrote any of the text, or sent it for approval, cannot review it."""
    if not second_person(
        reviewer,
        author_id=alert.author_id,
        submitted_by_id=alert.submitted_by_id,
        editor_ids=alert.editor_ids,
    ):
        raise Forbidden(
            "the author cannot approve their own alert: a second person must "
            "(whoever wrote, edited or submitted it counts as its author)"
        )


def approve_alert(
    *, session: Session, settings: Settings, approver: Operator, alert_id: int
) -> Alert:
    """Four eyes: an approver other than the author lets the alert go.

    The SMS parts are checked again against today's limit, which may have been lowered
    since the alert was submitted: what the provider would refuse is never approved.
    """
    require(approver, Action.REVIEW_ALERTS)
    alert = get_alert(session=session, alert_id=alert_id)
    _require_second_person(alert, approver)
    now = utcnow()
    if alert.status in LIVE and alert.expires_at <= now:
        raise Conflict(f"alert {alert.id} expired at {alert.expires_at.isoformat()}")
    if alert.status is AlertStatus.AWAITING_APPROVAL:
        check_sms_parts(alert=alert, limit=settings.sms_max_parts)
    return transition(
        session=session,
        alert=alert,
        move=Move.APPROVE,
        actor=actor_of(approver),
        values={"approved_at": now, "approver_id": approver.id},
    )


def reject_alert(*, session: Session, approver: Operator, alert_id: int, reason: str) -> Alert:
    """Send an alert back to its author as a draft, with the reason."""
    require(approver, Action.REVIEW_ALERTS)
    reason = reason_text(reason or "", "reason")
    if not reason:
        raise InvalidInput("reason", "say why the alert is rejected")
    alert = get_alert(session=session, alert_id=alert_id)
    _require_second_person(alert, approver)
    return transition(
        session=session,
        alert=alert,
        move=Move.REJECT,
        actor=actor_of(approver),
        values={"status_reason": reason, "submitted_at": None, "submitted_by_id": None},
    )


def cancel_alert(*, session: Session, actor: Operator, alert_id: int, reason: str) -> Alert:
    """Stop an alert in any live state; a dispatch in progress stops its pending messages."""
    require(actor, Action.CANCEL_ALERTS)
    reason = reason_text(reason or "", "reason")
    if not reason:
        raise InvalidInput("reason", "say why the alert is cancelled")
    alert = get_alert(session=session, alert_id=alert_id)
    transition(
        session=session,
        alert=alert,
        move=Move.CANCEL,
        actor=actor_of(actor),
        values={
            "cancelled_at": utcnow(),
            "cancelled_by_id": actor.id,
            "status_reason": reason,
        },
    )
    DeliveryStateMachine(session).suppress(reason=SuppressReason.CANCELLED, alert_id=alert.id)
    return alert


def expire_due_alerts(*, session: Session, now: datetime | None = None) -> list[int]:
    """Mark every live alert past its expiry as expired, suppress what has not left, and
    return their ids.

    One guarded UPDATE takes all the alert rows it moves before the audit head is locked:
    the lock order every audited action follows (object rows first, then the chain).
    """
    moment = now or utcnow()
    sources, target = MOVES[Move.EXPIRE]
    expired = sorted(
        session.scalars(
            update(Alert)
            .where(Alert.status.in_(sources), Alert.expires_at <= moment)
            .values(status=target, finished_at=moment)
            .returning(Alert.id)
            .execution_options(synchronize_session=False)
        )
    )
    machine = DeliveryStateMachine(session)
    for alert_id in expired:
        machine.suppress(reason=SuppressReason.EXPIRED, alert_id=alert_id, now=moment)
        audit.record(
            session=session,
            actor="system:expiry",
            action=f"alert.{Move.EXPIRE.value}",
            object_type="alert",
            object_id=alert_id,
            payload={"status": target.value},
        )
    return expired


DONE_WITH_FAILURES = "done_with_failures"


def outcome_of(status: AlertStatus, failed: int) -> str:
    """What an alert's state reads as: `done` only when nothing failed, for an alert that
    ends with failures is never shown as a plain success."""
    return DONE_WITH_FAILURES if status is AlertStatus.DONE and failed else status.value


def describe_alerts(session: Session, found: Sequence[Alert]) -> list[dict[str, Any]]:
    """`describe_alert` for a list, their failed messages counted in one query."""
    failed = progress.failed(session, [alert.id for alert in found])
    return [describe_alert(alert, failed=failed.get(alert.id, 0)) for alert in found]


def describe_alert(alert: Alert, *, failed: int | None = None) -> dict[str, Any]:
    """A plain, JSON-ready view of an alert for the CLI, the API and the console, with
    how many of its messages failed (counted here unless given) and what its state reads
    as (`outcome`)."""

    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    if failed is None:
        session = Session.object_session(alert)
        counted = progress.failed(session, [alert.id]) if session and alert.id else {}
        failed = counted.get(alert.id, 0)
    return {
        "id": alert.id,
        "status": alert.status,
        "outcome": outcome_of(alert.status, failed),
        "failed": failed,
        "msg_type": alert.msg_type,
        "references_id": alert.references_id,
        # Exercise and Test alerts reach only the test audience, and say so everywhere.
        "exercise": alert.cap_status is not CapStatus.ACTUAL,
        "topic": alert.topic.slug,
        "districts": "*" if alert.whole_city else [d.slug for d in alert.districts],
        "severity": alert.severity,
        "urgency": alert.urgency,
        "cap_status": alert.cap_status,
        "channels": list(alert.channels),
        "transliterate_sms": alert.transliterate_sms,
        "contents": {c.language: {"title": c.title, "body": c.body} for c in alert.contents},
        "author_id": alert.author_id,
        "editor_ids": list(alert.editor_ids),
        "submitted_by_id": alert.submitted_by_id,
        "approver_id": alert.approver_id,
        "cancelled_by_id": alert.cancelled_by_id,
        "send_at": iso(alert.send_at),
        "expires_at": iso(alert.expires_at),
        "created_at": iso(alert.created_at),
        "submitted_at": iso(alert.submitted_at),
        "approved_at": iso(alert.approved_at),
        "cancelled_at": iso(alert.cancelled_at),
        "dispatched_at": iso(alert.dispatched_at),
        "finished_at": iso(alert.finished_at),
        "status_reason": alert.status_reason,
    }
