"""The staff console: sign-in and sign-out, the alert list and the approvers' queue.

Composing and editing an alert live in compose.py, one alert's page, its actions and its
follow-ups in alerts.py.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from sqlalchemy.orm import Session

from broadcaster.alerts import services as alerts
from broadcaster.alerts.models import AlertStatus
from broadcaster.errors import Unauthenticated
from broadcaster.staff import sessions as console_sessions
from broadcaster.staff.permissions import Action
from broadcaster.web.core import (
    STAFF_COOKIE,
    FormDep,
    PageDep,
    WebRoute,
    forget_session,
    keep_session,
    require,
)

router = APIRouter(prefix="/console", route_class=WebRoute, include_in_schema=False)

STATUS_NAMES = {
    "draft": ("szkic", "draft"),
    "awaiting_approval": ("czeka na zatwierdzenie", "awaiting approval"),
    "approved": ("zatwierdzony", "approved"),
    "dispatching": ("wysyłany", "dispatching"),
    "done": ("wysłany", "done"),
    "cancelled": ("odwołany", "cancelled"),
    "expired": ("wygasł", "expired"),
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
