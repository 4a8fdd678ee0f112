"""The console applies the same text rule and SMS parts limit as the API and the command
line, says what is wrong next to the field (or the button) refused, marks an SMS over
the limit in its preview, and never shows an alert that ended with failures as a plain
success."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from broadcaster.alerts import lifecycle
from broadcaster.alerts import services as alerts
from broadcaster.alerts.drafts import AlertDraft
from broadcaster.alerts.models import Alert, AlertStatus
from broadcaster.settings import Settings
from channels.interfaces import Outcome
from tests.conftest import LONG_PL, Staff
from tests.web.conftest import People, field_error, sent_alert
from tests.web.test_console import ALERT, alerts_in, write, written

TOO_LONG_PL = "SMS (pl) wymaga 4 części, limit to 3: skróć tekst lub włącz transliterację do GSM-7"


def status_of(db: sessionmaker[Session], alert_id: int) -> AlertStatus:
    with db() as session:
        return session.get_one(Alert, alert_id).status


def long_draft(settings: Settings, staff: Staff, db: sessionmaker[Session], submit: bool) -> int:
    """An alert with a 4-part SMS, written (and submitted) while the limit was 4."""
    roomy = settings.model_copy(update={"sms_max_parts": 4})
    with db.begin() as session:
        alert = alerts.create_alert(
            session=session,
            settings=roomy,
            author=staff.author,
            draft=AlertDraft(
                topic="weather-warning",
                severity="Severe",
                urgency="Expected",
                channels=["sms"],
                contents={"pl": ("Burza", LONG_PL)},
                districts=["wola"],
            ),
        )
        if submit:
            lifecycle.submit_alert(
                session=session, settings=roomy, actor=staff.author, alert_id=alert.id
            )
        return alert.id


@pytest.mark.parametrize("character", ["\x00", "\x1b"])
@pytest.mark.parametrize("field", ["title_pl", "body_pl"])
def test_a_control_character_is_refused_next_to_its_field(
    people: People, db: sessionmaker[Session], field: str, character: str
) -> None:
    answer = write(people.operator, **{field: f"Bu{character}rza"})
    assert answer.status_code == 422
    said = field_error(answer.text, field)
    assert said is not None and f"znak sterujący U+{ord(character):04X}" in said, said
    assert alerts_in(db) == 0

    alert_id = written(people.operator)
    edit = f"/console/alerts/{alert_id}/edit"
    refused = people.operator.submit(edit, edit, {**ALERT, field: f"Bu{character}rza"})
    assert refused.status_code == 422 and field_error(refused.text, field)
    with db() as session:
        assert session.get_one(Alert, alert_id).content_for("pl").title == ALERT["title_pl"]


@pytest.mark.parametrize(
    ("field", "typed", "said"),
    [
        # Refused as the API and the command line refuse it, not trimmed away unseen...
        ("title_pl", "Burza\x1f", "znak sterujący U+001F (znak nr 6)"),
        ("body_en", "\x1c", "znak sterujący U+001C (znak nr 1)"),
        # ...and found where it was typed, spaces before it included.
        ("body_pl", "  Bu\x00rza", "znak sterujący U+0000 (znak nr 5)"),
    ],
)
def test_a_control_character_at_the_edge_is_refused_where_it_was_typed(
    people: People, db: sessionmaker[Session], field: str, typed: str, said: str
) -> None:
    answer = write(people.operator, **{field: typed})
    assert answer.status_code == 422
    assert said in (field_error(answer.text, field) or ""), field_error(answer.text, field)
    assert alerts_in(db) == 0


@pytest.mark.parametrize("separator", ["\r", "\u2028", "\u0085"])
def test_a_line_break_in_a_title_is_stored_as_a_space(
    people: People, db: sessionmaker[Session], separator: str
) -> None:
    alert_id = written_with(people, title_pl=f"Burza{separator}nad Wolą")
    with db() as session:
        assert session.get_one(Alert, alert_id).content_for("pl").title == "Burza nad Wolą"


def written_with(people: People, **changes: Any) -> int:
    answer = write(people.operator, **changes)
    assert answer.status_code == 303, answer.text
    return int(answer.headers["location"].rsplit("/", 1)[1])


def test_an_sms_over_the_limit_is_refused_next_to_the_body_and_marked_in_the_preview(
    people: People, db: sessionmaker[Session]
) -> None:
    answer = write(people.operator, title_pl="Burza", body_pl=LONG_PL)
    assert answer.status_code == 422
    assert field_error(answer.text, "body_pl") == TOO_LONG_PL
    assert alerts_in(db) == 0

    preview = write(people.operator, title_pl="Burza", body_pl=LONG_PL, do="preview")
    assert preview.status_code == 200
    marked = re.findall(r'class="phone sms over-limit" data-over-limit="(\w+)"', preview.text)
    assert marked == ["en", "pl", "uk"]
    assert "ponad limit 3 części: nie zostanie zatwierdzony" in preview.text
    assert 'id="sms-pl-problem" role="alert"' in preview.text
    assert "zaznacz „SMS bez polskich znaków”" in preview.text
    assert alerts_in(db) == 0

    fits = write(people.operator, title_pl="Burza", body_pl=LONG_PL, transliterate_sms="on")
    assert fits.status_code == 303, fits.text

    # The reader's language (remembered from here on).
    in_english = people.operator.submit(
        "/console/alerts/new?lang=en",
        "/console/alerts/new?lang=en",
        {**ALERT, "title_pl": "Burza", "body_pl": LONG_PL},
    )
    assert field_error(in_english.text, "body_pl") == (
        "SMS (pl) needs 4 parts, the limit is 3: shorten the text or transliterate it to GSM-7"
    )


def test_submit_is_refused_next_to_its_button(
    people: People, db: sessionmaker[Session], settings: Settings, staff: Staff
) -> None:
    alert_id = long_draft(settings, staff, db, submit=False)
    page = f"/console/alerts/{alert_id}"
    refused = people.operator.submit(page, f"{page}/submit", {})
    assert refused.status_code == 422
    assert field_error(refused.text, "submit") == TOO_LONG_PL
    assert 'class="phone sms over-limit" data-over-limit="pl"' in refused.text
    assert status_of(db, alert_id) is AlertStatus.DRAFT


def test_approve_checks_again_after_the_limit_was_lowered(
    people: People, db: sessionmaker[Session], settings: Settings, staff: Staff
) -> None:
    alert_id = long_draft(settings, staff, db, submit=True)
    page = f"/console/alerts/{alert_id}"
    assert 'data-over-limit="pl"' in people.approver.get(page).text
    refused = people.approver.submit(page, f"{page}/approve", {})
    assert refused.status_code == 422
    assert field_error(refused.text, "approve") == TOO_LONG_PL
    assert status_of(db, alert_id) is AlertStatus.AWAITING_APPROVAL


@pytest.mark.parametrize(
    ("outcome", "shown"),
    [(Outcome.SENT, "wysłany"), (Outcome.PERMANENT, "wysłany z błędami (2 nieudanych)")],
)
def test_an_alert_that_ended_with_failures_is_never_shown_as_a_plain_success(
    people: People,
    db: sessionmaker[Session],
    settings: Settings,
    staff: Staff,
    outcome: Outcome,
    shown: str,
) -> None:
    alert_id = sent_alert(db, settings, staff, outcome)

    def badge(page: str) -> str:
        found = re.search(r'<span class="status s-(\w+)"[^>]*>(.*?)</span>(?=\s|<|$)', page)
        assert found, page[:2000]
        return re.sub(r"<[^>]+>|⚠ ", "", found[2])

    page = people.auditor.get(f"/console/alerts/{alert_id}").text
    assert badge(page.split('id="progress"')[0].split('class="badges"')[1]) == shown
    assert badge(page.split('id="progress"')[1]) == shown
    assert badge(people.auditor.get("/console").text) == shown
    assert badge(people.auditor.get(f"/console/alerts/{alert_id}/progress").text) == shown
    english = people.auditor.get(f"/console/alerts/{alert_id}?lang=en").text
    if outcome is Outcome.PERMANENT:
        assert "sent with failures (2 failed)" in english


@pytest.mark.parametrize("character", ["\x00", "\x1b"])
def test_a_reason_with_a_control_character_is_refused_next_to_it(
    people: People, db: sessionmaker[Session], character: str
) -> None:
    alert_id = written(people.operator)
    page = f"/console/alerts/{alert_id}"
    refused = people.operator.submit(page, f"{page}/cancel", {"reason": f"bu{character}rza"})
    assert refused.status_code == 422
    assert f"U+{ord(character):04X}" in (field_error(refused.text, "cancel-reason") or "")
    assert status_of(db, alert_id) is AlertStatus.DRAFT
