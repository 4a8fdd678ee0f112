"""Alerts over HTTP: the lifecycle, four eyes, idempotency, preview, progress, and every
refusal a client can run into, each naming what was wrong."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from broadcaster.alerts.models import Alert
from broadcaster.audit.models import AuditEvent
from broadcaster.dispatch import planning
from broadcaster.dispatch.models import Delivery, DeliveryStatus
from broadcaster.http.app import create_app
from broadcaster.settings import Settings
from tests.api.conftest import Headers, Outbox
from tests.conftest import add_resident, send_alert


def alert_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "topic": "weather-warning",
        "districts": ["wola", "bemowo"],
        "severity": "Severe",
        "urgency": "Immediate",
        "channels": ["sms", "email"],
        "contents": {
            "pl": {"title": "Burza", "body": "Silne burze od 18:00. Uważaj na gałęzie."},
            "en": {"title": "Storm", "body": "Severe storms from 18:00."},
        },
    }
    body.update(changes)
    return body


def create(client: TestClient, headers: dict[str, str], **changes: Any) -> dict[str, Any]:
    answer = client.post("/alerts", json=alert_body(**changes), headers=headers)
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


def counts(db: sessionmaker[Session]) -> tuple[int, int]:
    with db.begin() as session:
        return (
            session.scalar(select(func.count()).select_from(Alert)) or 0,
            session.scalar(select(func.count()).select_from(AuditEvent)) or 0,
        )


def field_of(answer: Any) -> list[str]:
    assert answer.status_code == 422, answer.text
    return [".".join(str(part) for part in error["loc"]) for error in answer.json()["detail"]]


@pytest.fixture
def residents(db: sessionmaker[Session], settings: Settings) -> None:
    with db.begin() as session:
        for n in range(3):
            add_resident(
                session,
                settings,
                contacts=[("sms", f"60100080{n}"), ("email", f"w{n}@example.com")],
                topics=["weather-warning"],
                districts=["wola"],
            )
        add_resident(
            session,
            settings,
            contacts=[("sms", "601000810")],
            topics=["weather-warning"],
            districts=["wola", "bemowo"],
            language="en",
        )
        add_resident(
            session,
            settings,
            contacts=[("sms", "601000811")],
            topics=["weather-warning"],
            districts=["wola"],
            test_audience=True,
        )


def test_an_alert_goes_from_draft_to_approved_through_two_people(
    client: TestClient, auth: Headers
) -> None:
    alert = create(client, auth.operator)
    assert alert["status"] == "draft"
    assert alert["msg_type"] == "alert" and alert["exercise"] is False
    assert sorted(alert["districts"]) == ["bemowo", "wola"]
    assert client.get(f"/alerts/{alert['id']}", headers=auth.auditor).json() == alert

    submitted = client.post(f"/alerts/{alert['id']}/submit", headers=auth.operator)
    assert submitted.status_code == 200 and submitted.json()["status"] == "awaiting_approval"
    queue = client.get(
        "/alerts", params={"status": "awaiting_approval"}, headers=auth.approver
    ).json()
    assert [item["id"] for item in queue["items"]] == [alert["id"]]

    approved = client.post(f"/alerts/{alert['id']}/approve", headers=auth.approver)
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved"
    assert approved.json()["approver_id"] != alert["author_id"]


def test_an_approved_alert_is_handed_to_the_planner_at_once_unless_scheduled(
    client: TestClient, auth: Headers, outbox: Outbox
) -> None:
    now_alert = create(client, auth.operator, severity="Extreme")
    client.post(f"/alerts/{now_alert['id']}/submit", headers=auth.operator)
    later = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    scheduled = create(client, auth.operator)
    client.post(
        f"/alerts/{scheduled['id']}/schedule", json={"send_at": later}, headers=auth.operator
    )
    client.post(f"/alerts/{scheduled['id']}/submit", headers=auth.operator)
    assert outbox.planned == []  # submitting hands nothing on
    for alert in (now_alert, scheduled):
        approved = client.post(f"/alerts/{alert['id']}/approve", headers=auth.approver)
        assert approved.status_code == 200, approved.text
    # The one due now, urgent; the scheduled one is the sweeper's, at its time.
    assert outbox.planned == [(now_alert["id"], True)]


def test_an_approval_stands_when_the_planner_cannot_be_reached(
    app_settings: Settings, outbox: Outbox, auth: Headers
) -> None:
    def broker_down(_alert_id: int, _urgent: bool) -> None:
        raise ConnectionError("broker away")

    app = create_app(
        app_settings, publish=outbox.publish, notify=outbox.notify, plan_now=broker_down
    )
    with TestClient(app) as client:
        alert = create(client, auth.operator)
        client.post(f"/alerts/{alert['id']}/submit", headers=auth.operator)
        approved = client.post(f"/alerts/{alert['id']}/approve", headers=auth.approver)
        assert approved.status_code == 200 and approved.json()["status"] == "approved"
        again = client.get(f"/alerts/{alert['id']}", headers=auth.auditor).json()
    assert again["status"] == "approved"  # committed: the sweeper plans it within a sweep


def test_nobody_who_wrote_an_alert_approves_it(client: TestClient, auth: Headers) -> None:
    own = create(client, auth.admin)
    client.post(f"/alerts/{own['id']}/submit", headers=auth.admin)
    refused = client.post(f"/alerts/{own['id']}/approve", headers=auth.admin)
    assert refused.status_code == 403
    assert "author cannot approve" in refused.json()["detail"]

    # An admin who edited an operator's draft counts as one of its authors too.
    edited = create(client, auth.operator)
    body = alert_body(severity="Extreme")
    assert client.put(f"/alerts/{edited['id']}", json=body, headers=auth.admin).status_code == 200
    client.post(f"/alerts/{edited['id']}/submit", headers=auth.operator)
    assert client.post(f"/alerts/{edited['id']}/approve", headers=auth.admin).status_code == 403
    assert client.post(f"/alerts/{edited['id']}/approve", headers=auth.approver).status_code == 200


def test_a_rejected_alert_returns_to_its_author_with_the_reason(
    client: TestClient, auth: Headers
) -> None:
    alert = create(client, auth.operator)
    client.post(f"/alerts/{alert['id']}/submit", headers=auth.operator)
    spaces = client.post(
        f"/alerts/{alert['id']}/reject", json={"reason": "  "}, headers=auth.approver
    )
    assert field_of(spaces) == ["body.reason"]
    blank = client.post(f"/alerts/{alert['id']}/reject", json={}, headers=auth.approver)
    assert field_of(blank) == ["body.reason"]
    rejected = client.post(
        f"/alerts/{alert['id']}/reject",
        json={"reason": "Podaj godzinę końca."},
        headers=auth.approver,
    )
    assert rejected.status_code == 200
    assert rejected.json()["status"] == "draft"
    assert rejected.json()["status_reason"] == "Podaj godzinę końca."
    again = client.post(f"/alerts/{alert['id']}/approve", headers=auth.approver)
    assert again.status_code == 409


def test_only_the_author_edits_a_draft_and_only_while_it_is_one(
    client: TestClient, auth: Headers
) -> None:
    alert = create(client, auth.operator)
    changed = alert_body(channels=["sms"], districts=["ursus"])
    other = client.put(f"/alerts/{alert['id']}", json=changed, headers=auth.second_operator)
    assert other.status_code == 403
    edited = client.put(f"/alerts/{alert['id']}", json=changed, headers=auth.operator)
    assert edited.status_code == 200
    assert edited.json()["channels"] == ["sms"] and edited.json()["districts"] == ["ursus"]
    assert (
        client.post(f"/alerts/{alert['id']}/submit", headers=auth.second_operator).status_code
        == 403
    )
    client.post(f"/alerts/{alert['id']}/submit", headers=auth.operator)
    late = client.put(f"/alerts/{alert['id']}", json=alert_body(), headers=auth.operator)
    assert late.status_code == 409
    assert client.put("/alerts/999999", json=alert_body(), headers=auth.operator).status_code == 404


def test_the_same_idempotency_key_gives_the_same_alert(
    client: TestClient, auth: Headers, db: sessionmaker[Session]
) -> None:
    key = {"Idempotency-Key": "3f0c2a9e-retry-1"}
    first = client.post("/alerts", json=alert_body(), headers={**auth.operator, **key})
    assert first.status_code == 201
    again = client.post("/alerts", json=alert_body(), headers={**auth.operator, **key})
    assert again.status_code == 200
    assert again.json() == first.json()
    alerts_before, events_before = counts(db)

    other_body = client.post(
        "/alerts", json=alert_body(severity="Minor"), headers={**auth.operator, **key}
    )
    assert field_of(other_body) == ["body.Idempotency-Key"]
    assert counts(db) == (alerts_before, events_before)

    # A key belongs to the operator who sent it: another operator's is another alert.
    theirs = client.post("/alerts", json=alert_body(), headers={**auth.second_operator, **key})
    assert theirs.status_code == 201 and theirs.json()["id"] != first.json()["id"]

    bad = client.post(
        "/alerts", json=alert_body(), headers={**auth.operator, "Idempotency-Key": "a b"}
    )
    assert field_of(bad) == ["body.Idempotency-Key"]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"topic": "volcanoes"}, "body.topic"),
        ({"districts": ["atlantis"]}, "body.districts"),
        ({"districts": []}, "body.districts"),
        ({"severity": "Apocalyptic"}, "body.severity"),
        ({"channels": ["pigeon"]}, "body.channels.0"),
        ({"channels": []}, "body.channels"),
        ({"contents": {"en": {"title": "Storm", "body": "Storms."}}}, "body.contents.pl"),
        ({"contents": {"pl": {"title": "", "body": "Burze."}}}, "body.contents.pl.title"),
        ({"contents": {"pl": {"title": "x" * 201, "body": "B"}}}, "body.contents.pl.title"),
        ({"contents": {"de": {"title": "Sturm", "body": "B"}}}, "body.contents.de.[key]"),
        ({"send_at": "2030-01-01T10:00:00"}, "body.send_at"),
        ({"send_at": 1893456000}, "body.send_at"),
        ({"send_at": "2020-01-01T10:00:00+01:00"}, "body.send_at"),
        ({"expires_at": "2020-01-01T10:00:00+01:00"}, "body.expires_at"),
        ({"whole_city": True}, "body.districts"),
        ({"colour": "red"}, "body.colour"),
        ({"topic": "weather\x00warning"}, "body.topic"),
    ],
)
def test_bad_input_is_a_422_naming_the_field_and_writes_nothing(
    client: TestClient,
    auth: Headers,
    db: sessionmaker[Session],
    changes: dict[str, Any],
    field: str,
) -> None:
    before = counts(db)
    answer = client.post("/alerts", json=alert_body(**changes), headers=auth.operator)
    assert field in field_of(answer)
    assert counts(db) == before


def test_a_body_that_is_not_json_is_a_422(client: TestClient, auth: Headers) -> None:
    answer = client.post(
        "/alerts",
        content=b"{not json",
        headers={**auth.operator, "Content-Type": "application/json"},
    )
    assert answer.status_code == 422


def test_a_body_over_a_megabyte_is_refused_before_it_is_read(
    client: TestClient, auth: Headers, db: sessionmaker[Session]
) -> None:
    before = counts(db)
    huge = alert_body(contents={"pl": {"title": "Burza", "body": "x" * 1_000_001}})
    assert client.post("/alerts", json=huge, headers=auth.operator).status_code == 413

    def chunks() -> Any:  # no Content-Length: the limit applies while reading
        for _ in range(11):
            yield b"x" * 100_000

    streamed = client.post(
        "/alerts",
        content=chunks(),
        headers={**auth.operator, "Content-Type": "application/json"},
    )
    assert streamed.status_code == 413
    assert counts(db) == before


def test_schedule_a_draft(client: TestClient, auth: Headers) -> None:
    alert = create(client, auth.operator)
    later = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    scheduled = client.post(
        f"/alerts/{alert['id']}/schedule", json={"send_at": later}, headers=auth.operator
    )
    assert scheduled.status_code == 200
    assert datetime.fromisoformat(scheduled.json()["send_at"]) == datetime.fromisoformat(later)
    past = client.post(
        f"/alerts/{alert['id']}/schedule",
        json={"send_at": "2020-05-01T12:00:00+02:00"},
        headers=auth.operator,
    )
    assert field_of(past) == ["body.send_at"]
    too_late = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    beyond = client.post(
        f"/alerts/{alert['id']}/schedule", json={"send_at": too_late}, headers=auth.operator
    )
    assert field_of(beyond) == ["body.send_at"]
    cleared = client.post(
        f"/alerts/{alert['id']}/schedule", json={"send_at": None}, headers=auth.operator
    )
    assert cleared.json()["send_at"] is None
    client.post(f"/alerts/{alert['id']}/submit", headers=auth.operator)
    locked = client.post(
        f"/alerts/{alert['id']}/schedule", json={"send_at": later}, headers=auth.operator
    )
    assert locked.status_code == 409


def test_the_preview_shows_audience_per_channel_and_district_and_the_cost(
    client: TestClient, auth: Headers, residents: None
) -> None:
    alert = create(client, auth.operator)
    preview = client.get(f"/alerts/{alert['id']}/preview", headers=auth.approver)
    assert preview.status_code == 200, preview.text
    view = preview.json()
    assert view["exercise"] is False
    # The test audience receives actual alerts too: they are residents like any other.
    assert view["audience"] == {"sms": 5, "email": 3}
    assert view["audience_by_district"] == {"wola": {"sms": 5, "email": 3}, "bemowo": {"sms": 1}}
    sms_pl = view["variants"]["pl"]["sms"]
    assert sms_pl["encoding"] == "UCS-2" and sms_pl["recipients"] == 4
    assert view["variants"]["en"]["sms"]["recipients"] == 1
    parts = view["sms"]["total_parts"]
    assert parts == sum(v["sms"]["total_parts"] for v in view["variants"].values())
    assert view["sms"]["estimated_cost_pln"] == f"{parts * 0.16:.2f}"


def test_an_exercise_reaches_only_the_test_audience_and_says_so(
    client: TestClient, auth: Headers, residents: None
) -> None:
    alert = create(client, auth.operator, cap_status="Exercise")
    assert alert["exercise"] is True and alert["cap_status"] == "Exercise"
    view = client.get(f"/alerts/{alert['id']}/preview", headers=auth.operator).json()
    assert view["exercise"] is True
    assert view["audience"] == {"sms": 1}
    progress = client.get(f"/alerts/{alert['id']}/progress", headers=auth.operator).json()
    assert progress["exercise"] is True


def test_progress_follows_the_deliveries_and_cancel_stops_what_has_not_left(
    client: TestClient, auth: Headers, db: sessionmaker[Session], residents: None
) -> None:
    alert = create(client, auth.operator)
    client.post(f"/alerts/{alert['id']}/submit", headers=auth.operator)
    client.post(f"/alerts/{alert['id']}/approve", headers=auth.approver)
    plan = planning.plan_alert(sessions=db, alert_id=alert["id"], batch_size=100)
    assert plan is not None
    live = client.get(f"/alerts/{alert['id']}/progress", headers=auth.auditor).json()
    assert live["status"] == "dispatching" and live["finished"] is False
    assert live["channels"] == {"sms": {"pending": 5}, "email": {"pending": 3}}
    assert live["totals"] == {"pending": 8}

    no_reason = client.post(f"/alerts/{alert['id']}/cancel", json={}, headers=auth.operator)
    assert field_of(no_reason) == ["body.reason"]
    cancelled = client.post(
        f"/alerts/{alert['id']}/cancel",
        json={"reason": "Burza ominęła miasto."},
        headers=auth.approver,
    )
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    after = client.get(f"/alerts/{alert['id']}/progress", headers=auth.auditor).json()
    assert after["finished"] is True and after["totals"] == {"suppressed": 8}
    with db.begin() as session:
        statuses = set(session.scalars(select(Delivery.status)))
    assert statuses == {DeliveryStatus.SUPPRESSED}
    twice = client.post(
        f"/alerts/{alert['id']}/cancel", json={"reason": "again"}, headers=auth.operator
    )
    assert twice.status_code == 409


def test_alerts_are_listed_newest_first_a_page_at_a_time(client: TestClient, auth: Headers) -> None:
    made = [create(client, auth.operator)["id"] for _ in range(5)]
    seen: list[int] = []
    cursor: int | None = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor is not None:
            params["before"] = cursor
        page = client.get("/alerts", params=params, headers=auth.auditor).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(made, reverse=True)
    assert client.get("/alerts", params={"limit": 0}, headers=auth.auditor).status_code == 422
    assert client.get("/alerts/0", headers=auth.auditor).status_code == 422
    assert client.get(f"/alerts/{2**40}", headers=auth.auditor).status_code == 422


def test_an_update_goes_to_exactly_who_received_the_original(
    client: TestClient,
    auth: Headers,
    db: sessionmaker[Session],
    settings: Settings,
    residents: None,
) -> None:
    original = create(client, auth.operator)
    never_sent = client.post(
        f"/alerts/{original['id']}/follow-ups",
        json={"msg_type": "update", "contents": {"pl": {"title": "Burza", "body": "Już."}}},
        headers=auth.operator,
    )
    assert never_sent.status_code == 409
    client.post(f"/alerts/{original['id']}/submit", headers=auth.operator)
    client.post(f"/alerts/{original['id']}/approve", headers=auth.approver)
    reached = send_alert(db, settings, original["id"])
    # Somebody new subscribes after the original went out: the Update is not for them.
    with db.begin() as session:
        add_resident(
            session,
            settings,
            contacts=[("sms", "601000899")],
            topics=["weather-warning"],
            districts=["wola"],
        )

    bad = client.post(
        f"/alerts/{original['id']}/follow-ups",
        json={"msg_type": "alert", "contents": {"pl": {"title": "Burza", "body": "Już."}}},
        headers=auth.operator,
    )
    assert field_of(bad) == ["body.msg_type"]
    update = client.post(
        f"/alerts/{original['id']}/follow-ups",
        json={
            "msg_type": "update",
            "severity": "Moderate",
            "contents": {"pl": {"title": "Burza słabnie", "body": "Burze słabną po 20:00."}},
        },
        headers=auth.operator,
    )
    assert update.status_code == 201, update.text
    follow = update.json()
    assert follow["msg_type"] == "update" and follow["references_id"] == original["id"]
    assert follow["status"] == "draft" and follow["severity"] == "Moderate"

    # Only its text may change: it goes where the original went.
    moved = alert_body(
        districts=["ursus"],
        contents={"pl": {"title": "Burza słabnie", "body": "Po 20:00."}},
    )
    refused = client.put(f"/alerts/{follow['id']}", json=moved, headers=auth.operator)
    assert field_of(refused) == ["body.districts"]

    client.post(f"/alerts/{follow['id']}/submit", headers=auth.operator)
    assert client.post(f"/alerts/{follow['id']}/approve", headers=auth.operator).status_code == 403
    assert client.post(f"/alerts/{follow['id']}/approve", headers=auth.approver).status_code == 200
    preview = client.get(f"/alerts/{follow['id']}/preview", headers=auth.approver).json()
    assert sum(preview["audience"].values()) == len(reached)
    assert send_alert(db, settings, follow["id"]) == reached


def test_a_filter_given_twice_or_misspelt_is_refused_not_ignored(
    client: TestClient, auth: Headers
) -> None:
    create(client, auth.operator)
    both = client.get("/alerts?status=draft&status=approved", headers=auth.auditor)
    assert both.status_code == 200 and len(both.json()["items"]) == 1
    twice = client.get("/alerts?limit=1&limit=50", headers=auth.auditor)
    assert twice.status_code == 422
    assert twice.json()["detail"][0]["loc"] == ["query", "limit"]
    typo = client.get("/alerts?statsu=approved", headers=auth.auditor)
    assert typo.status_code == 422
    assert typo.json()["detail"][0]["loc"] == ["query", "statsu"]
