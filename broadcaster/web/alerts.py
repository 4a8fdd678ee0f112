"""One alert in the staff console: its page (preview, targeting, progress, who did what,
and the actions the reader may take), its progress alone, submitting, approving,
rejecting and cancelling it, and its follow-ups (Update and Cancel).

Every action goes through the same lifecycle functions as the API, which check the role
and the rules about the object again (the author never approves).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from broadcaster.alerts import follow_ups, lifecycle
from broadcaster.alerts import services as alerts
from broadcaster.alerts.drafts import texts_from_fields
from broadcaster.alerts.messages import preview_alert
from broadcaster.alerts.models import Alert, AlertStatus, MsgType
from broadcaster.audit import trail as audit
from broadcaster.dispatch import progress
from broadcaster.errors import Conflict, InvalidInput
from broadcaster.staff import permissions
from broadcaster.staff.models import Operator
from broadcaster.staff.permissions import Action
from broadcaster.web.compose import LANGUAGES, AlertId, form_field
from broadcaster.web.core import FormDep, Page, PageDep, WebRoute, require, signed_in
from broadcaster.web.staff import STATUS_NAMES

router = APIRouter(prefix="/console", route_class=WebRoute, include_in_schema=False)

# What the audit trail's actions on an alert mean, for its history.
ACTION_NAMES = {
    "alert.created": ("utworzył(a)", "created it"),
    "alert.edited": ("zmienił(a)", "edited it"),
    "alert.scheduled": ("zaplanował(a)", "scheduled it"),
    "alert.submit": ("wysłał(a) do zatwierdzenia", "submitted it for approval"),
    "alert.approve": ("zatwierdził(a)", "approved it"),
    "alert.reject": ("odrzucił(a)", "rejected it"),
    "alert.start_dispatch": ("rozpoczęto wysyłkę", "dispatch started"),
    "alert.planned": ("rozplanowano odbiorców", "recipients planned"),
    "alert.finish": ("wysyłka zakończona", "dispatch finished"),
    "alert.cancel": ("anulował(a)", "cancelled it"),
    "alert.expire": ("wygasł", "expired"),
}


# -- one alert ------------------------------------------------------------------------


def _history(session: Session, alert_id: int) -> list[dict[str, Any]]:
    events = audit.read_events(
        session=session,
        chosen=audit.EventFilter(object_type="alert", object_id=str(alert_id)),
        newest_first=False,
        after_seq=None,
        limit=200,
    )
    return [
        {
            "at": e.occurred_at,
            "actor": e.actor,
            "action": e.action,
            "payload": json.loads(e.payload),
        }
        for e in events
    ]


def _progress(session: Session, alert: Alert) -> dict[str, Any]:
    by_channel = progress.read(session, alert.id)
    totals = progress.totals(by_channel)
    return {
        "channels": by_channel,
        "totals": totals,
        "all": sum(totals.values()),
        "finished": alert.status not in lifecycle.LIVE,
    }


def _names_of(session: Session, ids: set[int]) -> dict[int, str]:
    rows = session.execute(
        select(Operator.id, Operator.display_name).where(Operator.id.in_(ids))
    ).all()
    return {i: name for i, name in rows}


@router.get("/alerts/{alert_id}")
def alert_page(page: PageDep, alert_id: AlertId) -> Response:
    return _alert_view(page, alert_id)


def _alert_view(
    page: Page, alert_id: int, errors: dict[str, str] | None = None, code: int = 200
) -> Response:
    me = require(page, Action.READ_ALERTS)
    with page.api.transaction() as session:
        alert = alerts.get_alert(session=session, alert_id=alert_id)
        described = alerts.describe_alert(alert)
        shown = preview_alert(
            session=session,
            alert=alert,
            sms_max_parts=page.settings.sms_max_parts,
            sms_part_price=page.settings.sms_part_price,
        )
        counts = _progress(session, alert)
        history = _history(session, alert_id)
        people = {alert.author_id, alert.approver_id, alert.submitted_by_id, alert.cancelled_by_id}
        people |= {
            int(e["actor"].split(":")[1]) for e in history if e["actor"].startswith("operator:")
        }
        names = _names_of(session, {i for i in people if i is not None})
        topic = alert.topic
        topic_name = topic.name_en if page.language == "en" else topic.name_pl
    return page.render(
        "alert.html",
        code=code,
        alert=described,
        preview=shown,
        progress=counts,
        history=history,
        actions=ACTION_NAMES,
        names=names,
        topic_name=topic_name,
        may=_allowed(me, described),
        statuses=STATUS_NAMES,
        errors=errors or {},
        live=described["status"] in {AlertStatus.APPROVED, AlertStatus.DISPATCHING},
    )


@router.get("/alerts/{alert_id}/watch")
def watch_page(page: PageDep, alert_id: AlertId) -> Response:
    """Progress alone, reloading itself every few seconds while the alert goes out: for a
    browser without scripts (the alert's own page has forms a reload would clear)."""
    require(page, Action.READ_ALERTS)
    with page.api.transaction() as session:
        alert = alerts.get_alert(session=session, alert_id=alert_id)
        counts = _progress(session, alert)
        described = alerts.describe_alert(alert)
    return page.render(
        "watch.html",
        progress=counts,
        alert=described,
        statuses=STATUS_NAMES,
        live=described["status"] in {AlertStatus.APPROVED, AlertStatus.DISPATCHING},
    )


def _allowed(me: Operator, alert: dict[str, Any]) -> dict[str, bool]:
    """Which buttons to show, by the rules the lifecycle functions apply again."""
    status = alert["status"]
    writer = permissions.can(me, Action.WRITE_ALERTS)
    own_draft = (
        writer
        and status is AlertStatus.DRAFT
        and permissions.may_act_on_draft(me, author_id=alert["author_id"])
    )
    return {
        "edit": own_draft,
        "submit": own_draft,
        "review": permissions.can(me, Action.REVIEW_ALERTS)
        and status is AlertStatus.AWAITING_APPROVAL
        and permissions.second_person(
            me,
            author_id=alert["author_id"],
            submitted_by_id=alert["submitted_by_id"],
            editor_ids=alert["editor_ids"],
        ),
        "cancel": permissions.can(me, Action.CANCEL_ALERTS) and status in lifecycle.LIVE,
        "follow_up": writer
        and alert["msg_type"] is MsgType.ALERT
        and status in {AlertStatus.DISPATCHING, AlertStatus.DONE},
    }


@router.get("/alerts/{alert_id}/progress")
def progress_fragment(page: PageDep, alert_id: AlertId) -> Response:
    """The progress box alone, polled by the page's script while the alert goes out."""
    require(page, Action.READ_ALERTS)
    with page.api.transaction() as session:
        alert = alerts.get_alert(session=session, alert_id=alert_id)
        counts = _progress(session, alert)
        described = alerts.describe_alert(alert)
    return page.render("_progress.html", progress=counts, alert=described, statuses=STATUS_NAMES)


def _act(page: Page, form: FormData, alert_id: int, act: str) -> Response:
    me = signed_in(page)
    reason = str(form.get("reason", "")).strip()
    if act in {"reject", "cancel"} and not reason:
        message = page.t("podaj powód", "give a reason")
        return _alert_view(page, alert_id, {f"{act}-reason": message}, code=422)
    try:
        _move(page, me, act, alert_id, reason)
    except InvalidInput as error:
        # Next to the button that was refused (and the preview marks the variant).
        where = f"{act}-reason" if error.field == "reason" else act
        return _alert_view(page, alert_id, {where: error.message_in(page.language)}, code=422)
    return page.redirect(f"/console/alerts/{alert_id}")


def _move(page: Page, me: Operator, act: str, alert_id: int, reason: str) -> None:
    approved = None
    with page.api.transaction() as session:
        if act == "submit":
            lifecycle.submit_alert(
                session=session, settings=page.settings, actor=me, alert_id=alert_id
            )
        elif act == "approve":
            approved = lifecycle.approve_alert(
                session=session, settings=page.settings, approver=me, alert_id=alert_id
            )
        elif act == "reject":
            lifecycle.reject_alert(session=session, approver=me, alert_id=alert_id, reason=reason)
        else:
            lifecycle.cancel_alert(session=session, actor=me, alert_id=alert_id, reason=reason)
    if approved is not None:
        page.api.start_planning(approved)


@router.post("/alerts/{alert_id}/submit")
def submit(page: PageDep, form: FormDep, alert_id: AlertId) -> Response:
    return _act(page, form, alert_id, "submit")


@router.post("/alerts/{alert_id}/approve")
def approve(page: PageDep, form: FormDep, alert_id: AlertId) -> Response:
    return _act(page, form, alert_id, "approve")


@router.post("/alerts/{alert_id}/reject")
def reject(page: PageDep, form: FormDep, alert_id: AlertId) -> Response:
    return _act(page, form, alert_id, "reject")


@router.post("/alerts/{alert_id}/cancel")
def cancel(page: PageDep, form: FormDep, alert_id: AlertId) -> Response:
    return _act(page, form, alert_id, "cancel")


# -- Update and Cancel ----------------------------------------------------------------


@router.get("/alerts/{alert_id}/follow-up")
def follow_up_page(page: PageDep, alert_id: AlertId, kind: str = "update") -> Response:
    me = require(page, Action.WRITE_ALERTS)
    with page.api.transaction() as session:
        original = alerts.describe_alert(alerts.get_alert(session=session, alert_id=alert_id))
    if not _allowed(me, original)["follow_up"]:
        raise Conflict("an Update or Cancel follows an alert that has gone out")
    values = {"msg_type": kind if kind in {"update", "cancel"} else "update"}
    return page.render(
        "follow_up.html", original=original, values=values, errors={}, languages=LANGUAGES
    )


@router.post("/alerts/{alert_id}/follow-up")
def follow_up(page: PageDep, form: FormDep, alert_id: AlertId) -> Response:
    me = require(page, Action.WRITE_ALERTS)
    values = {key: str(value) for key, value in form.items()}
    try:
        with page.api.transaction() as session:
            created = follow_ups.create_follow_up(
                session=session,
                settings=page.settings,
                author=me,
                original_id=alert_id,
                msg_type=values.get("msg_type", ""),
                contents=texts_from_fields(values),
            )
            new_id = created.id
    except InvalidInput as error:
        with page.api.transaction() as session:
            original = alerts.describe_alert(alerts.get_alert(session=session, alert_id=alert_id))
        return page.render(
            "follow_up.html",
            code=422,
            original=original,
            values=values,
            errors={form_field(error.field): error.message_in(page.language)},
            languages=LANGUAGES,
        )
    return page.redirect(f"/console/alerts/{new_id}")
