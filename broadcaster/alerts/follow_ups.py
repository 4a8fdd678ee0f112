"""Follow-ups: CAP Update and Cancel messages of an alert already sent.

A follow-up is an alert of its own (`msg_type` update or cancel, `references_id` the
original) and goes through the same four-eyes lifecycle as any alert: a draft, submitted
by its author, approved by a second person, then planned and sent. It keeps the
original's topic, districts, channels and CAP status (a follow-up of an exercise is an
exercise); an Update may change severity and urgency, a Cancel keeps them. The operator
writes the new text (Polish required). Its audience is not who follows the topic today
but exactly the contact points that received the original (`targeting.audience_query`),
frozen when the follow-up is planned; quiet hours apply by its own severity.

What is refused, and why:
- an original that never started dispatch: nobody received it (edit or cancel it
  instead), and one that finished having reached nobody;
- an original that is itself an Update or Cancel: every follow-up references the alert
  itself, whose recipients are the audience of all of them, so a resident whose Update
  failed still receives the Cancel;
- anything once a Cancel of the original is on its way or sent: the alert is withdrawn,
  there is nothing left to update or to cancel again;
- an Update while the original is still dispatching: residents it has not reached yet
  would get the old text after the new one and never the new one. Wait until it is done,
  or cancel it.

A Cancel while the original is still dispatching cancels the original at once, in the
same transaction (`lifecycle.cancel_alert` suppresses its pending messages): a withdrawn
alert must not keep going out while the Cancel message waits for its second pair of
eyes. Any operator may stop an alert alone, so this skips no approval. The messages in
flight at that moment settle within seconds, long before the Cancel message is approved
and planned, so those that reached their resident are in its audience.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from broadcaster.alerts import drafts, lifecycle
from broadcaster.alerts import services as alerts
from broadcaster.alerts.drafts import AlertDraft
from broadcaster.alerts.lifecycle import LIVE
from broadcaster.alerts.models import Alert, AlertStatus, MsgType
from broadcaster.db.engine import utcnow
from broadcaster.dispatch import progress
from broadcaster.dispatch.audience import RECEIVED
from broadcaster.errors import Conflict, InvalidInput, NotFound
from broadcaster.settings import Settings
from broadcaster.staff.models import Operator
from broadcaster.staff.permissions import Action, require

FOLLOW_UPS = (MsgType.UPDATE, MsgType.CANCEL)


def create_follow_up(
    *,
    session: Session,
    settings: Settings,
    author: Operator,
    original_id: int,
    msg_type: str,
    contents: Mapping[str, tuple[str, str]],
    severity: str | None = None,
    urgency: str | None = None,
    expires_at: datetime | None = None,
) -> Alert:
    """A draft Update or Cancel of alert `original_id`, written by `author`.

    `contents` maps a language to (title, body), Polish required, as for any alert;
    `severity` and `urgency` default to the original's and only an Update may change them.
    """
    require(author, Action.WRITE_ALERTS)
    kind = _follow_up_kind(msg_type)
    if kind is MsgType.CANCEL:
        for field, value in (("severity", severity), ("urgency", urgency)):
            if value is not None:
                raise InvalidInput(field, "a Cancel keeps the severity and urgency of its alert")
    original = _lock_original(session=session, original_id=original_id)
    _check_original(session=session, original=original, kind=kind)
    draft = AlertDraft(
        topic=original.topic.slug,
        severity=severity if severity is not None else original.severity.value,
        urgency=urgency if urgency is not None else original.urgency.value,
        channels=list(original.channels),
        contents=contents,
        districts=[district.slug for district in original.districts],
        whole_city=original.whole_city,
        cap_status=original.cap_status.value,
        transliterate_sms=original.transliterate_sms,
        expires_at=expires_at,
    )
    checked = drafts.check_draft(session=session, settings=settings, draft=draft, now=utcnow())
    follow_up = alerts.add_alert(
        session=session,
        settings=settings,
        author=author,
        checked=checked,
        msg_type=kind,
        references_id=original.id,
    )
    if kind is MsgType.CANCEL and original.status is AlertStatus.DISPATCHING:
        lifecycle.cancel_alert(
            session=session,
            actor=author,
            alert_id=original.id,
            reason=f"withdrawn by its Cancel message, alert {follow_up.id}",
        )
    return follow_up


def _follow_up_kind(msg_type: object) -> MsgType:
    try:
        kind = MsgType(str(msg_type))
    except ValueError:
        kind = MsgType.ALERT
    if kind not in FOLLOW_UPS:
        raise InvalidInput("msg_type", "must be one of update, cancel")
    return kind


def _lock_original(*, session: Session, original_id: int) -> Alert:
    """The original, its row locked (on PostgreSQL) until the follow-up is written: two
    operators writing a Cancel at once do not both pass the checks."""
    if isinstance(original_id, bool) or not isinstance(original_id, int):
        raise InvalidInput("original_id", "must be an alert id")
    # The id alone: FOR UPDATE may not reach the topic that loading an alert joins in.
    locked = session.scalar(select(Alert.id).where(Alert.id == original_id).with_for_update())
    if locked is None:
        raise NotFound("alert", original_id)
    return session.get_one(Alert, locked, populate_existing=True)


def _check_original(*, session: Session, original: Alert, kind: MsgType) -> None:
    """Refuse a follow-up that nobody could receive or that makes no sense (see above)."""
    if original.msg_type is not MsgType.ALERT:
        raise InvalidInput(
            "original_id",
            f"alert {original.id} is itself a {original.msg_type.value} of alert "
            f"{original.references_id}: follow up alert {original.references_id}",
        )
    if original.dispatched_at is None:
        raise Conflict(
            f"original_id: alert {original.id} is {original.status.value} and was never "
            "dispatched, so nobody received it: edit or cancel it instead"
        )
    withdrawn = session.scalar(
        select(Alert.id)
        .where(
            Alert.references_id == original.id,
            Alert.msg_type == MsgType.CANCEL,
            or_(Alert.status.in_(LIVE), Alert.dispatched_at.is_not(None)),
        )
        .order_by(Alert.id)
        .limit(1)
    )
    if withdrawn is not None:
        raise Conflict(
            f"original_id: alert {original.id} is already withdrawn by its Cancel message, "
            f"alert {withdrawn}"
        )
    if original.status is AlertStatus.DISPATCHING:
        if kind is MsgType.UPDATE:
            raise Conflict(
                f"original_id: alert {original.id} is still being dispatched: an Update now "
                "would miss those it has not reached yet; wait until it is done, or cancel it"
            )
        return
    if not _received_by_anyone(session=session, alert_id=original.id):
        raise Conflict(
            f"original_id: alert {original.id} reached nobody (no message of it was sent)"
        )


def _received_by_anyone(*, session: Session, alert_id: int) -> bool:
    """Whether any message of the alert was sent or delivered, from its progress counters
    (a few rows, whatever the audience)."""
    counts = progress.read(session, alert_id)
    received = {status.value for status in RECEIVED}
    return any(
        count
        for by_status in counts.values()
        for status, count in by_status.items()
        if status in received
    )
