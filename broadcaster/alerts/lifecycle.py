"""An alert's lifecycle: one table of moves (MOVES), each made by `transition`, and the
moves people make (submit, approve, reject, cancel) and time makes (expire).

    draft -> awaiting_approval -> approved -> dispatching -> done
      ^            |  (reject)
      +------------+
    any live state -> cancelled;  past `expires_at` -> expired

Every move is one guarded UPDATE (`WHERE status IN (<allowed>)`), so two people acting on
the same alert at once cannot both win: the loser gets Conflict. Four eyes: an alert is
approved by an approver (or admin) who is not its author.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from broadcaster.alerts.messages import check_sms_parts
from broadcaster.alerts.models import (
    Alert,
    AlertStatus,
)
from broadcaster.alerts.services import get_alert
from broadcaster.audit import trail as audit
from broadcaster.db.engine import utcnow
from broadcaster.dispatch.states import DeliveryStateMachine, SuppressReason
from broadcaster.errors import Conflict, Forbidden, InvalidInput
from broadcaster.settings import Settings
from broadcaster.staff.models import Operator
from broadcaster.staff.operators import actor_of
from broadcaster.staff.permissions import Action, may_act_on_draft, require, second_person
from broadcaster.texts import reason_text

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
