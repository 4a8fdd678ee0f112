"""Alerts as operators keep them: create (through the draft rule, drafts.py), edit a draft,
schedule, list and look up, and the plain view every face shows. The moves between
states are lifecycle.py's.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, selectinload

from broadcaster.alerts.drafts import (
    AlertDraft,
    CheckedDraft,
    apply_draft,
    aware_moment,
    check_draft,
)
from broadcaster.alerts.messages import check_sms_parts
from broadcaster.alerts.models import (
    Alert,
    AlertStatus,
    CapStatus,
    MsgType,
)
from broadcaster.audit import trail as audit
from broadcaster.db.engine import utcnow
from broadcaster.dispatch import progress
from broadcaster.errors import Conflict, Forbidden, InvalidInput, NotFound
from broadcaster.settings import Settings
from broadcaster.staff.models import Operator
from broadcaster.staff.operators import actor_of
from broadcaster.staff.permissions import Action, may_act_on_draft, require


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
    moment = aware_moment(send_at, "send_at")
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
