"""Composing an alert in the staff console: the form, the live preview, saving a draft
and editing it.

Saving goes through the same lifecycle functions as the API, which check the role and
the rules about the object again.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from broadcaster import clock
from broadcaster.alerts import drafts
from broadcaster.alerts import services as alerts
from broadcaster.alerts.drafts import AlertDraft, texts_from_fields
from broadcaster.alerts.messages import preview_alert
from broadcaster.alerts.models import Alert, AlertStatus, CapStatus, MsgType, Severity, Urgency
from broadcaster.db.engine import utcnow
from broadcaster.errors import InvalidInput
from broadcaster.reference.models import Language, Topic
from broadcaster.staff.permissions import Action
from broadcaster.web.core import FormDep, Page, PageDep, WebRoute, require, warsaw_time
from channels import Channel

router = APIRouter(prefix="/console", route_class=WebRoute, include_in_schema=False)
# An id as the database holds it; anything else is no alert of ours (404).
AlertId = Annotated[int, Path(ge=1, le=2**31 - 1)]

LANGUAGES = [language.value for language in Language]


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
        checked = drafts.check_draft(
            session=session, settings=page.settings, draft=draft, now=utcnow()
        )
        alert = Alert(msg_type=MsgType.ALERT, status=AlertStatus.DRAFT)
        drafts.apply_draft(alert, checked, session)
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
