"""What the API accepts as an alert's text (one rule with the console and the command
line), SMS over the parts limit refused at every step, and an alert that ended with
failures never reading as a plain success."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from broadcaster.alerts.models import Alert, AlertStatus
from broadcaster.http.app import create_app
from broadcaster.settings import Settings
from channels.interfaces import Outcome
from tests.api.conftest import Headers, Outbox
from tests.api.test_alerts import alert_body, counts, create, field_of
from tests.conftest import LONG_PL, add_sms_residents, send_alert

TOO_LONG = "SMS (pl) needs 4 parts, the limit is 3: shorten the text or transliterate it to GSM-7"


@pytest.fixture
def roomy(app_settings: Settings, outbox: Outbox) -> Iterator[TestClient]:
    """The same application and database with WSP_SMS_MAX_PARTS=4: as it was before the
    limit was lowered to today's 3."""
    settings = app_settings.model_copy(update={"sms_max_parts": 4})
    app = create_app(
        settings, publish=outbox.publish, notify=outbox.notify, plan_now=outbox.plan_now
    )
    with TestClient(app) as test_client:
        yield test_client


def long_sms(**changes: Any) -> dict[str, Any]:
    return alert_body(contents={"pl": {"title": "Burza", "body": LONG_PL}}, **changes)


def refusal(answer: Any) -> dict[str, Any]:
    assert answer.status_code == 422, answer.text
    [entry] = answer.json()["detail"]
    found: dict[str, Any] = entry
    return found


def status_of(db: sessionmaker[Session], alert_id: int) -> AlertStatus:
    with db.begin() as session:
        return session.get_one(Alert, alert_id).status


@pytest.mark.parametrize("character", ["\x00", "\x1b"])
@pytest.mark.parametrize("part", ["title", "body"])
def test_a_control_character_is_refused_naming_the_field(
    client: TestClient, auth: Headers, db: sessionmaker[Session], part: str, character: str
) -> None:
    before = counts(db)
    texts = {"title": "Burza", "body": "Silne burze od 18:00."}
    texts[part] = texts[part][:3] + character + texts[part][3:]
    answer = client.post("/alerts", json=alert_body(contents={"pl": texts}), headers=auth.operator)
    assert field_of(answer) == [f"body.contents.pl.{part}"]
    assert f"U+{ord(character):04X}" in answer.json()["detail"][0]["msg"]
    assert counts(db) == before

    draft = create(client, auth.operator)
    edited = client.put(
        f"/alerts/{draft['id']}", json=alert_body(contents={"pl": texts}), headers=auth.operator
    )
    assert field_of(edited) == [f"body.contents.pl.{part}"]
    assert client.get(f"/alerts/{draft['id']}", headers=auth.operator).json() == draft


@pytest.mark.parametrize("separator", ["\r", "\r\n", "\u2028", "\u2029", "\u0085"])
def test_a_line_break_in_a_title_folds_to_a_space_and_a_body_keeps_it_as_lf(
    client: TestClient, auth: Headers, separator: str
) -> None:
    alert = create(
        client,
        auth.operator,
        contents={
            "pl": {"title": f"Burza{separator}nad Wolą", "body": f"Od 18:00.{separator}Uważaj."}
        },
    )
    assert alert["contents"]["pl"] == {"title": "Burza nad Wolą", "body": "Od 18:00.\nUważaj."}


def test_an_sms_over_the_parts_limit_cannot_be_written(
    client: TestClient, auth: Headers, db: sessionmaker[Session]
) -> None:
    before = counts(db)
    refused = refusal(client.post("/alerts", json=long_sms(), headers=auth.operator))
    assert refused["field"] == "contents.pl.body"
    assert refused["msg"] == TOO_LONG
    assert list(refused["messages"]) == ["pl", "en", "uk"]
    assert refused["messages"]["pl"].startswith("SMS (pl) wymaga 4 części, limit to 3")
    assert counts(db) == before

    draft = create(client, auth.operator)
    edited = client.put(f"/alerts/{draft['id']}", json=long_sms(), headers=auth.operator)
    assert refusal(edited)["msg"] == TOO_LONG
    assert client.get(f"/alerts/{draft['id']}", headers=auth.operator).json() == draft

    # Either remedy the message names makes it fit.
    create(client, auth.operator, **{**long_sms(transliterate_sms=True)})
    create(client, auth.operator, **{**long_sms(channels=["email"])})


def test_submit_refuses_an_sms_written_when_the_limit_was_higher(
    client: TestClient, roomy: TestClient, auth: Headers, db: sessionmaker[Session]
) -> None:
    written = roomy.post("/alerts", json=long_sms(), headers=auth.operator)
    assert written.status_code == 201, written.text
    alert_id = written.json()["id"]
    refused = refusal(client.post(f"/alerts/{alert_id}/submit", headers=auth.operator))
    assert (refused["field"], refused["msg"]) == ("contents.pl.body", TOO_LONG)
    assert status_of(db, alert_id) is AlertStatus.DRAFT


def test_approve_checks_again_after_the_limit_was_lowered(
    client: TestClient, roomy: TestClient, auth: Headers, db: sessionmaker[Session]
) -> None:
    alert_id = roomy.post("/alerts", json=long_sms(), headers=auth.operator).json()["id"]
    assert roomy.post(f"/alerts/{alert_id}/submit", headers=auth.operator).status_code == 200

    refused = refusal(client.post(f"/alerts/{alert_id}/approve", headers=auth.approver))
    assert (refused["field"], refused["msg"]) == ("contents.pl.body", TOO_LONG)
    assert status_of(db, alert_id) is AlertStatus.AWAITING_APPROVAL
    assert roomy.post(f"/alerts/{alert_id}/approve", headers=auth.approver).status_code == 200


def test_the_preview_marks_every_variant_over_the_limit_with_the_remedy(
    client: TestClient, roomy: TestClient, auth: Headers
) -> None:
    alert_id = roomy.post("/alerts", json=long_sms(), headers=auth.operator).json()["id"]
    view = client.get(f"/alerts/{alert_id}/preview", headers=auth.approver).json()
    # Nobody reads English or Ukrainian today, but such a resident would get the Polish
    # text: approval refuses those variants too, so the preview shows them.
    assert view["sms"]["limit"] == 3
    assert view["sms"]["over_limit"] == ["en", "pl", "uk"]
    sms = view["variants"]["pl"]["sms"]
    assert (sms["parts"], sms["limit"], sms["over_limit"]) == (4, 3, True)
    assert sms["problem"]["field"] == "contents.pl.body"
    assert sms["problem"]["messages"]["en"] == TOO_LONG
    assert "transliterate_sms" in sms["problem"]["remedy"]["en"]

    fits = roomy.get(f"/alerts/{alert_id}/preview", headers=auth.approver).json()
    assert fits["sms"]["over_limit"] == []
    assert list(fits["variants"]) == ["pl"]
    assert fits["variants"]["pl"]["sms"]["problem"] is None


@pytest.mark.parametrize(
    ("outcome", "shown", "failed"),
    [(Outcome.SENT, "done", 0), (Outcome.PERMANENT, "done_with_failures", 2)],
)
def test_an_alert_that_ended_with_failures_never_reads_as_a_plain_success(
    client: TestClient,
    auth: Headers,
    db: sessionmaker[Session],
    settings: Settings,
    outcome: Outcome,
    shown: str,
    failed: int,
) -> None:
    with db.begin() as session:
        add_sms_residents(session, settings, "wola")
    alert_id = create(client, auth.operator)["id"]
    client.post(f"/alerts/{alert_id}/submit", headers=auth.operator)
    client.post(f"/alerts/{alert_id}/approve", headers=auth.approver)
    send_alert(db, settings, alert_id, outcome=outcome)

    alert = client.get(f"/alerts/{alert_id}", headers=auth.auditor).json()
    assert (alert["status"], alert["outcome"], alert["failed"]) == ("done", shown, failed)
    [listed] = client.get("/alerts", headers=auth.auditor).json()["items"]
    assert listed["outcome"] == shown
    progress = client.get(f"/alerts/{alert_id}/progress", headers=auth.auditor).json()
    assert progress["outcome"] == shown


def test_lengths_are_counted_once_line_breaks_are_one_as_in_the_console(
    client: TestClient, auth: Headers
) -> None:
    """A browser sends CR LF; a body of 2000 characters once each break is one LF is
    accepted over the API as in the console, and one character more is not."""
    body = ("ab\r\n" * 666) + "ab"  # 2000 characters as stored, 2666 as sent
    alert = create(
        client, auth.operator, channels=["email"], contents={"pl": {"title": "Burza", "body": body}}
    )
    assert len(alert["contents"]["pl"]["body"]) == 2000
    answer = client.post(
        "/alerts",
        json=alert_body(
            channels=["email"], contents={"pl": {"title": "Burza", "body": body + "c"}}
        ),
        headers=auth.operator,
    )
    assert field_of(answer) == ["body.contents.pl.body"]
