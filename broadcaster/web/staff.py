"""The staff console: sign-in, the alert list, composing with a live preview, the alert
page (preview, targeting, progress, who did what, and the actions the reader may take),
the approvers' queue and follow-ups.

Every action goes through the same lifecycle functions as the API, which check the role
and the rules about the object again (the author never approves).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from broadcaster import clock
from broadcaster.alerts import follow_ups
from broadcaster.alerts import services as alerts
from broadcaster.alerts.drafts import texts_from_fields
from broadcaster.alerts.messages import preview_alert
from broadcaster.alerts.models import Alert, AlertStatus, CapStatus, MsgType, Severity, Urgency
from broadcaster.alerts.services import AlertDraft
from broadcaster.audit import trail as audit
from broadcaster.db.engine import utcnow
from broadcaster.dispatch import progress
from broadcaster.errors import Conflict, InvalidInput, Unauthenticated
from broadcaster.reference.models import Language, Topic
from broadcaster.staff import permissions
from broadcaster.staff import sessions as console_sessions
from broadcaster.staff.models import Operator
from broadcaster.staff.permissions import Action
from broadcaster.web.core import (
    STAFF_COOKIE,
    FormDep,
    Page,
    PageDep,
    WebRoute,
    forget_session,
    keep_session,
    require,
    signed_in,
    warsaw_time,
)
from channels import Channel

router = APIRouter(prefix="/console", route_class=WebRoute, include_in_schema=False)
# An id as the database holds it; anything else is no alert of ours (404).
AlertId = Annotated[int, Path(ge=1, le=2**31 - 1)]

LANGUAGES = [language.value for language in Language]

STATUS_NAMES = {
    "draft": ("szkic", "draft"),
    "awaiting_approval": ("czeka na zatwierdzenie", "awaiting approval"),
    "approved": ("zatwierdzony", "approved"),
    "dispatching": ("wysyłany", "dispatching"),
    "done": ("wysłany", "done"),
    "cancelled": ("odwołany", "cancelled"),
    "expired": ("wygasł", "expired"),
}

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


# -- signing in -----------------------------------------------------------------------


def _safe_next(target: str) -> str:
    """Only a path of the console: never another site after signing in."""
    return target if target.startswith("/console") and not target.startswith("//") else "/console"


@router.get("/sign-in")
def sign_in_page(page: PageDep, next: str = "/console") -> Response:
    return page.render("sign_in.html", next=_safe_next(next), error=None)


@router.post("/sign-in")
def sign_in(page: PageDep, form: FormDep) -> Response:
    presented = str(form.get("token", "")).strip()
    target = _safe_next(str(form.get("next", "/console")))
    try:
        with page.api.transaction() as session:
            opened = console_sessions.open_session(
                session=session,
                presented_token=presented,
                replacing=page.request.cookies.get(STAFF_COOKIE),
            )
    except Unauthenticated:
        error = page.t(
            "Nieznany, wygasły lub unieważniony token.", "Unknown, expired or revoked token."
        )
        return page.render("sign_in.html", code=422, next=target, error=error)
    response = page.redirect(target)
    keep_session(response, opened.secret, page.settings)
    return response


@router.post("/sign-out")
def sign_out(page: PageDep, _form: FormDep) -> Response:
    presented = page.request.cookies.get(STAFF_COOKIE)
    if presented:
        with page.api.transaction() as session:
            console_sessions.close_session(session=session, secret=presented)
    response = page.redirect("/console/sign-in")
    forget_session(response, page.settings)
    return response


# -- the alert list and the review queue ----------------------------------------------


def _alert_rows(session: Session, statuses: list[AlertStatus]) -> list[dict[str, Any]]:
    found = alerts.list_alerts(session=session, statuses=statuses, limit=100)
    return alerts.describe_alerts(session, found)


@router.get("")
def alert_list(page: PageDep, status: str = "") -> Response:
    require(page, Action.READ_ALERTS)
    chosen = [AlertStatus(status)] if status in {s.value for s in AlertStatus} else []
    with page.api.transaction() as session:
        rows = _alert_rows(session, chosen)
    return page.render("alerts.html", rows=rows, status=status, statuses=STATUS_NAMES, heading=None)


@router.get("/review")
def review_queue(page: PageDep) -> Response:
    require(page, Action.REVIEW_ALERTS)
    with page.api.transaction() as session:
        rows = _alert_rows(session, [AlertStatus.AWAITING_APPROVAL])
    return page.render(
        "alerts.html",
        rows=rows,
        status="awaiting_approval",
        statuses=STATUS_NAMES,
        heading=page.t("Alerty do zatwierdzenia", "Alerts awaiting approval"),
    )


# -- composing ------------------------------------------------------------------------


def draft_from_form(form: FormData) -> AlertDraft:
    return AlertDraft(
        topic=str(form.get("topic", "")),
        severity=str(form.get("severity", "")),
        urgency=str(form.get("urgency", "")),
        cap_status=str(form.get("cap_status", CapStatus.ACTUAL.value)),
        channels=[str(c) for c in form.getlist("channels")],
        contents=texts_from_fields(form),
        districts=[str(d) for d in form.getlist("districts")],
        whole_city=form.get("whole_city") == "on",
        transliterate_sms=form.get("transliterate_sms") == "on",
        send_at=warsaw_time(str(form.get("send_at", "")), "send_at"),
        expires_at=warsaw_time(str(form.get("expires_at", "")), "expires_at"),
    )


def form_field(field_name: str) -> str:
    """The form's name for a field the domain names (contents.pl.title -> title_pl)."""
    parts = field_name.split(".")
    if parts[0] == "contents" and len(parts) >= 2:
        return f"{parts[2] if len(parts) > 2 else 'title'}_{parts[1]}"
    return parts[0]


def _values_of_alert(alert: Alert) -> dict[str, Any]:
    values: dict[str, Any] = {
        "topic": alert.topic.slug,
        "severity": alert.severity.value,
        "urgency": alert.urgency.value,
        "cap_status": alert.cap_status.value,
        "channels": list(alert.channels),
        "districts": [d.slug for d in alert.districts],
        "whole_city": alert.whole_city,
        "transliterate_sms": alert.transliterate_sms,
        "send_at": _local_input(alert.send_at),
        "expires_at": _local_input(alert.expires_at),
    }
    for content in alert.contents:
        values[f"title_{content.language}"] = content.title
        values[f"body_{content.language}"] = content.body
    return values


def _local_input(moment: datetime | None) -> str:
    return clock.local(moment).strftime("%Y-%m-%dT%H:%M") if moment else ""


def _values_of_form(form: FormData) -> dict[str, Any]:
    values: dict[str, Any] = {key: str(value) for key, value in form.items()}
    values["channels"] = [str(c) for c in form.getlist("channels")]
    values["districts"] = [str(d) for d in form.getlist("districts")]
    values["whole_city"] = form.get("whole_city") == "on"
    values["transliterate_sms"] = form.get("transliterate_sms") == "on"
    return values


def preview_draft(page: Page, draft: AlertDraft) -> dict[str, Any]:
    """The preview of an alert not yet saved: checked as saving would check it, counted
    against today's residents, and never written (the session is rolled back)."""
    with page.api.sessions() as session:
        checked = alerts.check_draft(
            session=session, settings=page.settings, draft=draft, now=utcnow()
        )
        alert = Alert(msg_type=MsgType.ALERT, status=AlertStatus.DRAFT)
        alerts.apply_draft(alert, checked, session)
        shown = preview_alert(
            session=session,
            alert=alert,
            sms_max_parts=page.settings.sms_max_parts,
            sms_part_price=page.settings.sms_part_price,
        )
        session.rollback()
    return shown


def _choices(session: Session) -> dict[str, Any]:
    topics = session.scalars(select(Topic).order_by(Topic.id)).all()
    return {
        "topics": [(t.slug, t.name_pl, t.name_en) for t in topics],
        "severities": [(s.value, s.value) for s in Severity],
        "urgencies": [(u.value, u.value) for u in Urgency],
        "cap_statuses": [c.value for c in CapStatus],
        "channels": [c.value for c in Channel],
        "languages": LANGUAGES,
    }


def _compose(
    page: Page,
    *,
    values: dict[str, Any],
    errors: dict[str, str],
    preview: dict[str, Any] | None,
    action: str,
    alert: dict[str, Any] | None = None,
    status: int = 200,
) -> Response:
    with page.api.transaction() as session:
        choices = _choices(session)
    return page.render(
        "compose.html",
        code=status,
        values=values,
        errors=errors,
        preview=preview,
        action=action,
        alert=alert,
        **choices,
    )


@router.get("/alerts/new")
def compose_page(page: PageDep) -> Response:
    require(page, Action.WRITE_ALERTS)
    values = {
        "severity": "Severe",
        "urgency": "Expected",
        "cap_status": "Actual",
        "channels": ["sms", "push", "email"],
        "districts": [],
    }
    return _compose(page, values=values, errors={}, preview=None, action="/console/alerts/new")


def _write(page: Page, form: FormData, alert_id: int | None) -> Response:
    me = require(page, Action.WRITE_ALERTS)
    values = _values_of_form(form)
    action = "/console/alerts/new" if alert_id is None else f"/console/alerts/{alert_id}/edit"
    editing = None
    if alert_id is not None:
        with page.api.transaction() as session:
            editing = alerts.describe_alert(alerts.get_alert(session=session, alert_id=alert_id))
    try:
        draft = draft_from_form(form)
        if form.get("do") == "preview":
            shown = preview_draft(page, draft)
            return _compose(
                page, values=values, errors={}, preview=shown, action=action, alert=editing
            )
        with page.api.transaction() as session:
            if alert_id is None:
                alert = alerts.create_alert(
                    session=session, settings=page.settings, author=me, draft=draft
                )
            else:
                alert = alerts.edit_draft(
                    session=session,
                    settings=page.settings,
                    editor=me,
                    alert_id=alert_id,
                    draft=draft,
                )
            saved = alert.id
    except InvalidInput as error:
        errors = {form_field(error.field): error.message_in(page.language)}
        return _compose(
            page,
            values=values,
            errors=errors,
            preview=None,
            action=action,
            alert=editing,
            status=422,
        )
    return page.redirect(f"/console/alerts/{saved}")


@router.post("/alerts/new")
def compose(page: PageDep, form: FormDep) -> Response:
    return _write(page, form, None)


@router.post("/alerts/preview")
def live_preview(page: PageDep, form: FormDep) -> Response:
    """The preview pane alone, for the page's script to refresh it as the operator types."""
    require(page, Action.WRITE_ALERTS)
    try:
        shown = preview_draft(page, draft_from_form(form))
    except InvalidInput as error:
        return page.render(
            "_preview.html",
            code=422,
            preview=None,
            problem=(form_field(error.field), error.message_in(page.language)),
        )
    return page.render("_preview.html", preview=shown, problem=None)


@router.get("/alerts/{alert_id}/edit")
def edit_page(page: PageDep, alert_id: AlertId) -> Response:
    require(page, Action.WRITE_ALERTS)
    with page.api.transaction() as session:
        alert = alerts.get_alert(session=session, alert_id=alert_id)
        values = _values_of_alert(alert)
        described = alerts.describe_alert(alert)
    return _compose(
        page,
        values=values,
        errors={},
        preview=None,
        action=f"/console/alerts/{alert_id}/edit",
        alert=described,
    )


@router.post("/alerts/{alert_id}/edit")
def edit(page: PageDep, form: FormDep, alert_id: AlertId) -> Response:
    return _write(page, form, alert_id)


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
        "finished": alert.status not in alerts.LIVE,
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
        "cancel": permissions.can(me, Action.CANCEL_ALERTS) and status in alerts.LIVE,
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
    with page.api.transaction() as session:
        if act == "submit":
            alerts.submit_alert(
                session=session, settings=page.settings, actor=me, alert_id=alert_id
            )
        elif act == "approve":
            alerts.approve_alert(
                session=session, settings=page.settings, approver=me, alert_id=alert_id
            )
        elif act == "reject":
            alerts.reject_alert(session=session, approver=me, alert_id=alert_id, reason=reason)
        else:
            alerts.cancel_alert(session=session, actor=me, alert_id=alert_id, reason=reason)


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
