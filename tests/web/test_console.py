"""The staff console without scripts: sign-in, composing with its preview, the four
eyes, roles, and what every page must refuse (a forged form) and send (its CSP)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from broadcaster.alerts.models import Alert, AlertStatus
from tests.api.conftest import Outbox
from tests.conftest import add_sms_residents
from tests.web.conftest import Browser, People, csrf_of, field_error, sent_alert

ALERT = {
    "topic": "weather-warning",
    "districts": ["mokotow", "wola"],
    "severity": "Severe",
    "urgency": "Expected",
    "cap_status": "Actual",
    "channels": ["sms", "email"],
    "title_pl": "Ostrzeżenie: burze z gradem",
    "body_pl": "Silne burze z gradem od 18:00. Zostań w domu.",
    "do": "save",
}


def alerts_in(db: sessionmaker[Session]) -> int:
    with db() as session:
        return int(session.scalar(select(func.count()).select_from(Alert)) or 0)


def write(browser: Browser, **changes: Any) -> Any:
    return browser.submit("/console/alerts/new", "/console/alerts/new", {**ALERT, **changes})


def written(browser: Browser) -> int:
    answer = write(browser)
    assert answer.status_code == 303, answer.text
    return int(answer.headers["location"].rsplit("/", 1)[1])


# -- signing in -----------------------------------------------------------------------


def test_a_page_without_a_session_sends_to_sign_in_and_back(visitor: Browser) -> None:
    answer = visitor.get("/console/log?channel=sms&status=failed")
    assert answer.status_code == 303
    assert answer.headers["location"] == (
        "/console/sign-in?next=%2Fconsole%2Flog%3Fchannel%3Dsms%26status%3Dfailed"
    )
    assert "set-cookie" not in answer.headers or "wsp_staff" not in answer.headers["set-cookie"]
    page = visitor.get(answer.headers["location"]).text
    assert 'name="next" value="/console/log?channel=sms&amp;status=failed"' in page


def test_a_revoked_session_is_forgotten(people: People, db: sessionmaker[Session]) -> None:
    from broadcaster.staff.models import ApiToken

    with db.begin() as session:
        for token in session.scalars(select(ApiToken)):
            token.revoked_at = token.created_at
    answer = people.auditor.get("/console")
    assert answer.status_code == 303
    assert 'wsp_staff=""' in answer.headers["set-cookie"]


def test_a_wrong_token_is_said_next_to_its_field(visitor: Browser) -> None:
    answer = visitor.submit("/console/sign-in", "/console/sign-in", {"token": "wsp_nope"})
    assert answer.status_code == 422
    assert "token" in (field_error(answer.text, "token") or "")


def test_the_session_cookie_is_http_only_lax_and_for_the_console(
    people: People, visitor: Browser, db: sessionmaker[Session], staff: Any
) -> None:
    from broadcaster.staff import tokens

    with db.begin() as session:
        token = tokens.issue_token(
            session=session, operator=staff.auditor, name="t", lifetime_days=1
        ).token
    answer = visitor.submit(
        "/console/sign-in", "/console/sign-in", {"token": token, "next": "https://evil.example/"}
    )
    assert answer.headers["location"] == "/console"  # never another site
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/console" in cookie


def test_signing_out_ends_the_session(people: People) -> None:
    browser = people.auditor
    assert browser.submit("/console", "/console/sign-out", {}).status_code == 303
    assert browser.get("/console").status_code == 303


# -- what every page refuses and sends ------------------------------------------------


def test_a_form_without_our_token_is_refused_and_changes_nothing(
    people: People, db: sessionmaker[Session]
) -> None:
    answer = people.operator.client.post("/console/alerts/new", data=ALERT, follow_redirects=False)
    assert answer.status_code == 403
    forged = people.operator.client.post(
        "/console/alerts/new", data={**ALERT, "csrf": "0" * 64}, follow_redirects=False
    )
    assert forged.status_code == 403
    assert alerts_in(db) == 0


def test_a_form_posted_from_another_site_is_refused(
    people: People, db: sessionmaker[Session]
) -> None:
    # The page's own token, but the browser says the form was on another site.
    answer = people.operator.submit(
        "/console/alerts/new",
        "/console/alerts/new",
        ALERT,
        headers={"Origin": "https://evil.example"},
    )
    assert answer.status_code == 403
    assert alerts_in(db) == 0


def test_a_token_from_another_browser_is_refused(people: People, db: sessionmaker[Session]) -> None:
    theirs = csrf_of(people.second_operator.get("/console/alerts/new").text)
    answer = people.operator.client.post(
        "/console/alerts/new", data={**ALERT, "csrf": theirs}, follow_redirects=False
    )
    assert answer.status_code == 403
    assert alerts_in(db) == 0


@pytest.mark.parametrize(
    "path",
    ["/console", "/console/alerts/new", "/console/review", "/console/log", "/console/audit"],
)
def test_every_page_sets_a_strict_content_security_policy(people: People, path: str) -> None:
    answer = people.admin.get(path)
    assert answer.status_code == 200
    policy = answer.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy and "unsafe-inline" not in policy
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["referrer-policy"] == "same-origin"
    assert " style=" not in answer.text and "<script>" not in answer.text


def test_english_is_a_click_away_and_remembered(people: People) -> None:
    answer = people.operator.get("/console?lang=en")
    assert '<html lang="en">' in answer.text and "New alert" in answer.text
    assert '<html lang="en">' in people.operator.get("/console").text
    assert '<html lang="pl">' in people.operator.get("/console?lang=pl").text


# -- roles ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "path"),
    [
        ("auditor", "/console/alerts/new"),
        ("approver", "/console/alerts/new"),
        ("operator", "/console/review"),
        ("operator", "/console/log"),
        ("approver", "/console/audit"),
        ("operator", "/console/log.csv"),
    ],
)
def test_a_page_of_another_role_is_forbidden(people: People, who: str, path: str) -> None:
    answer = getattr(people, who).get(path)
    assert answer.status_code == 403
    assert "this page is for" in answer.text


# -- composing ------------------------------------------------------------------------


def test_a_missing_title_is_said_next_to_it_and_nothing_is_saved(
    people: People, db: sessionmaker[Session]
) -> None:
    answer = write(people.operator, title_pl="")
    assert answer.status_code == 422
    assert field_error(answer.text, "title_pl") == "is required"
    assert 'value="Ostrzeżenie' not in answer.text  # the title was empty...
    assert "Silne burze z gradem od 18:00" in answer.text  # ...the body is kept
    assert alerts_in(db) == 0


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"topic": ""}, "topic"),
        ({"districts": []}, "districts"),
        ({"channels": []}, "channels"),
        ({"send_at": "jutro"}, "send_at"),
        ({"title_en": "Storms"}, "body_en"),
    ],
)
def test_each_refusal_names_its_field(
    people: People, db: sessionmaker[Session], changes: dict[str, Any], field: str
) -> None:
    answer = write(people.operator, **changes)
    assert answer.status_code == 422
    assert field_error(answer.text, field), answer.text[:2000]
    assert alerts_in(db) == 0


def test_the_preview_shows_audience_parts_and_cost_and_saves_nothing(
    people: People, db: sessionmaker[Session], settings: Any
) -> None:
    with db.begin() as session:
        add_sms_residents(session, settings, "mokotow")
    answer = write(people.operator, do="preview")
    assert answer.status_code == 200
    page = answer.text
    assert '<th scope="row">Mokotów</th><td>2</td>' in page
    assert "Ostrzeżenie: burze z gradem" in page and "UCS-2" in page  # Polish letters
    # Polish letters make it UCS-2: 70 characters a part, so two parts each.
    assert "<strong>4</strong>" in page and "0.64 PLN" in page  # 2 x 2 parts x 0.16
    assert alerts_in(db) == 0
    fragment = people.operator.submit("/console/alerts/new", "/console/alerts/preview", {**ALERT})
    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert "0.64 PLN" in fragment.text


def test_an_incomplete_form_previews_with_the_reason(people: People) -> None:
    answer = people.operator.submit(
        "/console/alerts/new", "/console/alerts/preview", {**ALERT, "topic": ""}
    )
    assert answer.status_code == 422 and "topic" in answer.text


def test_an_operator_writes_submits_and_a_second_person_approves(
    people: People, db: sessionmaker[Session], outbox: Outbox
) -> None:
    alert_id = written(people.operator)
    page = f"/console/alerts/{alert_id}"
    assert "Wyślij do zatwierdzenia" in people.operator.get(page).text
    submitted = people.operator.submit(page, f"{page}/submit", {})
    assert submitted.status_code == 303
    own = people.operator.get(page).text
    assert "Zatwierdź i wyślij" not in own  # the author is never offered approval
    refused = people.operator.submit(page, f"{page}/approve", {})
    assert refused.status_code == 403
    assert outbox.planned == []  # nothing approved, nothing handed to the planner
    queue = people.approver.get("/console/review").text
    assert f'href="/console/alerts/{alert_id}"' in queue
    approved = people.approver.submit(page, f"{page}/approve", {})
    assert approved.status_code == 303
    assert [planned for planned, _ in outbox.planned] == [alert_id]  # planned at once
    with db() as session:
        alert = session.get_one(Alert, alert_id)
        assert alert.status is AlertStatus.APPROVED
    history = people.auditor.get(page).text
    for done in ("utworzył(a)", "wysłał(a) do zatwierdzenia", "zatwierdził(a)"):
        assert done in history


def test_rejecting_needs_a_reason_next_to_nothing_else(
    people: People, db: sessionmaker[Session]
) -> None:
    alert_id = written(people.operator)
    page = f"/console/alerts/{alert_id}"
    people.operator.submit(page, f"{page}/submit", {})
    refused = people.approver.submit(page, f"{page}/reject", {"reason": " "})
    assert refused.status_code == 422
    assert field_error(refused.text, "reject-reason") == "podaj powód"
    rejected = people.approver.submit(page, f"{page}/reject", {"reason": "Zła dzielnica"})
    assert rejected.status_code == 303
    shown = people.operator.get(page).text
    assert "Zła dzielnica" in shown
    with db() as session:
        assert session.get_one(Alert, alert_id).status is AlertStatus.DRAFT


def test_a_draft_is_edited_in_the_same_form(people: People, db: sessionmaker[Session]) -> None:
    alert_id = written(people.operator)
    edit = f"/console/alerts/{alert_id}/edit"
    assert "Ostrzeżenie: burze z gradem" in people.operator.get(edit).text
    saved = people.operator.submit(edit, edit, {**ALERT, "title_pl": "Burze odwołane?"})
    assert saved.status_code == 303
    with db() as session:
        assert session.get_one(Alert, alert_id).content_for("pl").title == "Burze odwołane?"
    other = people.second_operator.submit(edit, edit, {**ALERT, "title_pl": "Nie moje"})
    assert other.status_code == 403


def test_cancelling_needs_a_reason_and_stops_the_alert(
    people: People, db: sessionmaker[Session]
) -> None:
    alert_id = written(people.operator)
    page = f"/console/alerts/{alert_id}"
    refused = people.operator.submit(page, f"{page}/cancel", {"reason": ""})
    assert refused.status_code == 422 and field_error(refused.text, "cancel-reason")
    assert people.operator.submit(page, f"{page}/cancel", {"reason": "Pomyłka"}).status_code == 303
    with db() as session:
        assert session.get_one(Alert, alert_id).status is AlertStatus.CANCELLED


def test_an_unknown_alert_is_a_404_page(people: People) -> None:
    answer = people.operator.get("/console/alerts/999999")
    assert answer.status_code == 404 and "<html" in answer.text


def test_the_progress_box_stands_alone_for_polling(people: People) -> None:
    alert_id = written(people.operator)
    answer = people.auditor.get(f"/console/alerts/{alert_id}/progress")
    assert answer.status_code == 200 and "<html" not in answer.text
    assert 'data-status="draft"' in answer.text


def test_an_update_or_cancel_is_written_for_a_sent_alert(
    people: People, db: sessionmaker[Session], settings: Any, staff: Any
) -> None:
    original = sent_alert(db, settings, staff)
    page = f"/console/alerts/{original}"
    shown = people.operator.get(page).text
    assert f"{page}/follow-up?kind=cancel" in shown
    form = f"{page}/follow-up?kind=cancel"
    assert 'value="cancel" checked' in people.operator.get(form).text
    missing = people.operator.submit(form, f"{page}/follow-up", {"msg_type": "cancel"})
    assert missing.status_code == 422 and field_error(missing.text, "title_pl")
    assert people.approver.get(form).status_code == 403
    written = people.operator.submit(
        form,
        f"{page}/follow-up",
        {"msg_type": "cancel", "title_pl": "Odwołanie", "body_pl": "Burze minęły."},
    )
    assert written.status_code == 303
    follow_up = people.operator.get(written.headers["location"]).text
    assert "CANCEL" in follow_up and f'href="/console/alerts/{original}"' in follow_up
    assert "ODWOŁANIE" in follow_up  # the marker every message of a Cancel carries


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/console/alerts/99999999999999999999", 404),
        ("/console/alerts/2147483648/edit", 404),
        ("/console/alerts/abc", 404),
        ("/console/alerts/0/progress", 404),
        ("/console/log?alert=%C2%B2", 422),
        ("/console/log?after=%C2%B2", 422),
        ("/console/log.csv?alert=%C2%B2", 422),
        ("/console/audit?before=%C2%B2", 422),
    ],
)
def test_odd_input_is_a_page_not_a_crash(people: People, path: str, status: int) -> None:
    answer = people.admin.get(path)
    assert answer.status_code == status
    assert answer.headers["content-type"].startswith("text/html")
    assert "Wyloguj" in answer.text  # the error page keeps the reader's menu


def test_only_the_author_or_an_admin_is_offered_to_edit_or_submit_a_draft(
    people: People,
) -> None:
    alert_id = written(people.operator)
    page = f"/console/alerts/{alert_id}"
    for browser, offered in [
        (people.operator, True),
        (people.admin, True),
        (people.second_operator, False),  # the lifecycle would refuse them: no button
    ]:
        shown = browser.get(page).text
        assert (f'href="{page}/edit"' in shown) is offered
        assert ('id="submit"' in shown) is offered


def test_an_hour_the_clocks_skip_is_refused(people: People, db: sessionmaker[Session]) -> None:
    answer = write(people.operator, send_at="2030-03-31T02:30")
    assert answer.status_code == 422
    assert "nie istnieje w Warszawie" in (field_error(answer.text, "send_at") or "")
    people.operator.get("/console?lang=en")
    answer = write(people.operator, send_at="2030-03-31T02:30")
    assert "does not exist in Warsaw" in (field_error(answer.text, "send_at") or "")
    assert alerts_in(db) == 0


def test_editing_stays_editing_through_a_preview_and_an_error(people: People) -> None:
    alert_id = written(people.operator)
    edit = f"/console/alerts/{alert_id}/edit"
    for changes in ({"do": "preview"}, {"title_pl": ""}):
        answer = people.operator.submit(edit, edit, {**ALERT, **changes})
        assert f"#{alert_id}</h1>" in answer.text and "Nowy alert</h1>" not in answer.text


def test_a_follow_up_of_a_draft_is_refused(people: People) -> None:
    alert_id = written(people.operator)
    answer = people.operator.get(f"/console/alerts/{alert_id}/follow-up")
    assert answer.status_code == 409


def test_a_live_alert_never_reloads_under_a_half_typed_reason(
    people: People, db: sessionmaker[Session], settings: Any, staff: Any
) -> None:
    alert_id = written(people.operator)
    page = f"/console/alerts/{alert_id}"
    people.operator.submit(page, f"{page}/submit", {})
    people.approver.submit(page, f"{page}/approve", {})
    shown = people.operator.get(page).text
    assert 'id="cancel-reason"' in shown and 'http-equiv="refresh"' not in shown
    assert f'href="{page}/watch"' in shown  # without scripts, progress on a page of its own
    watch = people.operator.get(f"{page}/watch").text
    assert (
        '<meta http-equiv="refresh" content="3">' in watch
        and "<form" not in watch.split("<main")[1]
    )


def test_the_log_links_carry_the_filters_encoded(people: People) -> None:
    answer = people.auditor.get("/console/log?from=2026-11-01T10:00%2B01:00&channel=sms")
    assert answer.status_code == 200
    assert (
        'href="/console/log.csv?channel=sms&amp;from=2026-11-01T10%3A00%2B01%3A00"' in answer.text
    )
