"""The auditors' routes over HTTP: the delivery log (pages, filters, CSV) and the audit trail.

The data is made the way production makes it: residents subscribe and verify, operators
write alerts that an approver signs off, the planner freezes audiences, a worker's claim
and outcomes move deliveries, and a resident erases themselves.
"""

from __future__ import annotations

import base64
import csv
import io
import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from broadcaster.alerts import lifecycle
from broadcaster.alerts import services as alerts
from broadcaster.alerts.drafts import AlertDraft
from broadcaster.audit.models import AuditEvent
from broadcaster.dispatch import log as delivery_log
from broadcaster.dispatch import planning, rendering, sending
from broadcaster.dispatch.models import Delivery
from broadcaster.residents.personal_data import erase_resident
from broadcaster.settings import Settings
from channels.interfaces import DeliveryResult, Outcome
from tests.api.conftest import Headers
from tests.conftest import Staff, add_resident, as_database_owner

NOW = datetime.now(UTC).replace(microsecond=0)
AN_HOUR_AGO = NOW - timedelta(hours=1)
# A provider's error text is not ours: in a spreadsheet this would run as a formula.
FORMULA = '=HYPERLINK("http://evil.example")'


@dataclass
class Scene:
    """Three alerts and their 17 deliveries.

    wola: w0..w3 (SMS and e-mail); mokotow: m0 (SMS) and a tester of the test audience
    (SMS); both districts: b0 (SMS). All subscribe to weather warnings. w2 erases
    themselves after planning.
    - `actual`: Wola, SMS and e-mail, planned an hour ago: 9 deliveries (w0..w3 x 2, b0);
      its SMS sent, the first of them refused by the provider with FORMULA.
    - `exercise`: an Exercise for Mokotów, SMS: only the tester, 1 delivery.
    - `citywide`: the whole city, SMS: 7 deliveries.
    """

    actual: int
    exercise: int
    citywide: int
    erased_subscriber: int
    refused_delivery: int
    addresses: list[str]


def approved_alert(
    db: sessionmaker[Session], settings: Settings, staff: Staff, **changes: Any
) -> int:
    fields: dict[str, Any] = {
        "topic": "weather-warning",
        "districts": ["wola"],
        "severity": "Severe",
        "urgency": "Immediate",
        "channels": ["sms"],
        "contents": {"pl": ("Burza", "Silne burze od 18:00.")},
        "expires_at": NOW + timedelta(hours=6),
    }
    fields.update(changes)
    with db.begin() as session:
        alert = alerts.create_alert(
            session=session, settings=settings, author=staff.author, draft=AlertDraft(**fields)
        )
        lifecycle.submit_alert(
            session=session, settings=settings, actor=staff.author, alert_id=alert.id
        )
        alert_id = alert.id
    with db.begin() as session:
        lifecycle.approve_alert(
            session=session, settings=settings, approver=staff.approver, alert_id=alert_id
        )
    return alert_id


def planned(db: sessionmaker[Session], alert_id: int, now: datetime) -> planning.Plan:
    plan = planning.plan_alert(sessions=db, alert_id=alert_id, now=now)
    assert plan is not None
    return plan


@pytest.fixture
def scene(db: sessionmaker[Session], settings: Settings, staff: Staff) -> Scene:
    people: dict[str, int] = {}
    addresses: list[str] = []
    with db.begin() as session:
        for name, contacts, districts, tester in [
            *(
                (
                    f"w{n}",
                    [("sms", f"60100070{n}"), ("email", f"w{n}@example.com")],
                    ["wola"],
                    False,
                )
                for n in range(4)
            ),
            ("m0", [("sms", "601000710")], ["mokotow"], False),
            ("tester", [("sms", "601000711")], ["mokotow"], True),
            ("b0", [("sms", "601000712")], ["wola", "mokotow"], False),
        ]:
            resident = add_resident(
                session,
                settings,
                contacts=contacts,
                topics=["weather-warning"],
                districts=districts,
                test_audience=tester,
            )
            people[name] = resident.id
            addresses += [point.address or "" for point in resident.contact_points]
    actual = approved_alert(db, settings, staff, channels=["sms", "email"])
    plan = planned(db, actual, AN_HOUR_AGO)
    [sms_batch] = [batch for batch in plan.due if batch.channel == "sms"]
    with db.begin() as session:
        claimed = sending.claim(
            session=session,
            settings=settings,
            variants=rendering.Variants(),
            alert_id=actual,
            batch_no=sms_batch.batch_no,
            now=AN_HOUR_AGO,
        )
        assert claimed is not None
        by_address = {message.address: message.delivery_id for message in claimed.messages}
        refused = by_address.pop("+48601000700")
        others = list(by_address.values())
        sending.record(
            session=session,
            claimed=claimed,
            now=AN_HOUR_AGO,
            results=[
                DeliveryResult(refused, Outcome.PERMANENT, error_code=FORMULA),
                *(DeliveryResult(i, Outcome.SENT, provider_id=f"p{i}") for i in others),
            ],
        )
    exercise = approved_alert(db, settings, staff, districts=["mokotow"], cap_status="Exercise")
    planned(db, exercise, NOW)
    citywide = approved_alert(db, settings, staff, districts=[], whole_city=True)
    planned(db, citywide, NOW)
    with db.begin() as session:
        erase_resident(session=session, subscriber_id=people["w2"], actor="system:test")
    return Scene(actual, exercise, citywide, people["w2"], refused, addresses)


def every_page(client: TestClient, headers: dict[str, str], path: str, **params: Any) -> list[Any]:
    """Follow `next_cursor` to the end; every page but the last is full."""
    items: list[Any] = []
    cursor = None
    while True:
        answer = client.get(
            path, headers=headers, params={**params, **({"cursor": cursor} if cursor else {})}
        )
        assert answer.status_code == 200, answer.text
        page = answer.json()
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items
        assert len(page["items"]) == params["limit"]


def deliveries(client: TestClient, auth: Headers, **params: Any) -> list[dict[str, Any]]:
    answer = client.get("/deliveries", headers=auth.auditor, params=params)
    assert answer.status_code == 200, answer.text
    assert answer.json()["next_cursor"] is None
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


def refusal(answer: Any) -> list[Any]:
    """Where a 422 points: (location, parameter) of each error."""
    assert answer.status_code == 422, answer.text
    return [tuple(error["loc"]) for error in answer.json()["detail"]]


def opaque(text: str) -> str:
    """A cursor made by hand, as a client might forge one."""
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


# The delivery log ---------------------------------------------------------------------


def test_pages_of_the_log_hold_every_delivery_once(
    client: TestClient, auth: Headers, db: sessionmaker[Session], scene: Scene
) -> None:
    with db() as session:
        stored = session.scalars(select(Delivery.id).order_by(Delivery.id)).all()
    assert len(stored) == 17
    for limit in (1, 4, 17, 1000):
        rows = every_page(client, auth.auditor, "/deliveries", limit=limit)
        assert [row["delivery_id"] for row in rows] == list(stored)
    sms = every_page(client, auth.admin, "/deliveries", limit=3, channel="sms")
    assert len(sms) == len({row["delivery_id"] for row in sms}) == 13


def test_a_row_shows_the_delivery_and_masks_its_contact(
    client: TestClient, auth: Headers, scene: Scene
) -> None:
    answer = client.get("/deliveries", headers=auth.auditor, params={"limit": 1000})
    for address in scene.addresses:
        assert address not in answer.text
    rows = {row["delivery_id"]: row for row in answer.json()["items"]}
    refused = rows[scene.refused_delivery]
    assert refused["alert_id"] == scene.actual
    assert (refused["status"], refused["error_code"], refused["attempts"]) == (
        "failed",
        FORMULA,
        1,
    )
    assert refused["contact"] == "+48******700"  # w0's phone
    assert (refused["exercise"], refused["cap_status"]) == (False, "Actual")
    assert refused["claimed_at"] is not None and refused["finished_at"] is not None
    emails = sorted(row["contact"] for row in rows.values() if row["channel"] == "email")
    assert emails == ["(erased)", "w***@example.com", "w***@example.com", "w***@example.com"]


def test_filters_by_alert_channel_and_status(
    client: TestClient, auth: Headers, scene: Scene
) -> None:
    [drill] = deliveries(client, auth, alert=scene.exercise)
    assert (drill["exercise"], drill["cap_status"], drill["contact"]) == (
        True,
        "Exercise",
        "+48******711",
    )
    assert len(deliveries(client, auth, alert=scene.citywide)) == 7
    assert len(deliveries(client, auth, alert=scene.actual, channel="email")) == 4
    [failed] = deliveries(client, auth, status="failed")
    assert failed["delivery_id"] == scene.refused_delivery
    # Erasure stopped what still waited for w2: the Wola e-mail and the city-wide SMS.
    suppressed = deliveries(client, auth, status="suppressed")
    assert sorted((row["alert_id"], row["channel"]) for row in suppressed) == sorted(
        [(scene.actual, "email"), (scene.citywide, "sms")]
    )
    assert {(row["reason"], row["contact"]) for row in suppressed} == {("erased", "(erased)")}
    assert deliveries(client, auth, alert=999999) == []


def test_the_time_window_is_on_when_a_delivery_was_created(
    client: TestClient, auth: Headers, scene: Scene
) -> None:
    half_an_hour_ago = (NOW - timedelta(minutes=30)).isoformat()
    recent = deliveries(client, auth, **{"from": half_an_hour_ago})
    assert {row["alert_id"] for row in recent} == {scene.exercise, scene.citywide}
    assert len(recent) == 8
    older = deliveries(client, auth, to=half_an_hour_ago)
    assert {row["alert_id"] for row in older} == {scene.actual} and len(older) == 9
    exactly = deliveries(client, auth, **{"from": AN_HOUR_AGO.isoformat(), "to": half_an_hour_ago})
    assert len(exactly) == 9  # `from` is inclusive
    warsaw = AN_HOUR_AGO.astimezone(timezone(timedelta(hours=2))).isoformat()
    assert len(deliveries(client, auth, **{"from": warsaw})) == 17


def test_a_district_means_residents_subscribed_there_to_an_alert_meant_for_it(
    client: TestClient, auth: Headers, scene: Scene
) -> None:
    mokotow = deliveries(client, auth, district="mokotow")
    # Not the Wola alert, though b0 got it and lives in both; the drill and the city-wide
    # SMS of m0, the tester and b0.
    assert sorted((row["alert_id"], row["contact"]) for row in mokotow) == sorted(
        [
            (scene.exercise, "+48******711"),
            (scene.citywide, "+48******710"),
            (scene.citywide, "+48******711"),
            (scene.citywide, "+48******712"),
        ]
    )
    wola = deliveries(client, auth, district="wola")
    # w0, w1, w3 and b0; w2 was erased with their subscriptions, so no district holds them.
    assert len(wola) == 11
    assert "(erased)" not in {row["contact"] for row in wola}
    assert deliveries(client, auth, district="bemowo") == []
    assert len(deliveries(client, auth, district="wola", channel="email")) == 3


@pytest.mark.parametrize(
    ("params", "where"),
    [
        ({"cursor": "not-a-cursor"}, ("query", "cursor")),
        ({"cursor": opaque("deliveries:0")}, ("query", "cursor")),
        ({"cursor": opaque("deliveries:-3")}, ("query", "cursor")),
        ({"cursor": opaque("deliveries:99999999999999999999")}, ("query", "cursor")),
        ({"cursor": opaque("audit-newest:3")}, ("query", "cursor")),
        ({"cursor": "ąę"}, ("query", "cursor")),
        ({"limit": 0}, ("query", "limit")),
        ({"limit": 1001}, ("query", "limit")),
        ({"alert": "first"}, ("query", "alert")),
        ({"alert": 2**40}, ("query", "alert")),
        ({"status": "lost"}, ("query", "status")),
        ({"channel": "fax"}, ("query", "channel")),
        ({"district": "atlantis"}, ("query", "district")),
        ({"district": "Wola!"}, ("query", "district")),
        ({"from": "yesterday"}, ("query", "from")),
        ({"from": "1767225600"}, ("query", "from")),  # a number is no date to a person
        ({"to": "5.960464477539063e-08"}, ("query", "to")),
        ({"from": "2026-01-01T12:00:00"}, ("query", "from")),  # no offset: ambiguous
        ({"to": "9999-12-31T23:00:00-12:00"}, ("query", "to")),  # past year 9999 in UTC
        (
            {"from": "2026-01-02T00:00:00+00:00", "to": "2026-01-01T00:00:00+00:00"},
            ("query", "to"),
        ),
        ({"sort": "id"}, ("query", "sort")),
    ],
)
def test_a_malformed_parameter_is_named(
    client: TestClient, auth: Headers, params: dict[str, Any], where: tuple[str, str]
) -> None:
    assert where in refusal(client.get("/deliveries", headers=auth.auditor, params=params))
    if where[1] not in {"cursor", "limit"}:
        csv_answer = client.get("/deliveries.csv", headers=auth.auditor, params=params)
        assert where in refusal(csv_answer)


def read_csv(answer: Any) -> list[dict[str, str]]:
    assert answer.status_code == 200, answer.text
    return list(csv.DictReader(io.StringIO(answer.text)))


def test_the_csv_export_streams_every_row_masked_and_safe_for_spreadsheets(
    client: TestClient, auth: Headers, scene: Scene
) -> None:
    answer = client.get("/deliveries.csv", headers=auth.auditor)
    assert answer.headers["content-type"].startswith("text/csv")
    disposition = answer.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="deliveries-') and disposition.endswith(
        '.csv"'
    )
    assert answer.text.splitlines()[0] == ",".join(delivery_log.CSV_COLUMNS)
    rows = read_csv(answer)
    assert len(rows) == 17
    for address in scene.addresses:
        assert address not in answer.text
    [refused] = [row for row in rows if row["delivery_id"] == str(scene.refused_delivery)]
    assert refused["error_code"] == f"'{FORMULA}"
    # A masked phone starts with "+": text, not a formula, once prefixed.
    assert refused["contact"] == "'+48******700"
    assert (refused["status"], refused["exercise"], refused["sent_at"]) == ("failed", "false", "")
    drill = read_csv(
        client.get("/deliveries.csv", headers=auth.admin, params={"alert": scene.exercise})
    )
    assert [(row["exercise"], row["contact"]) for row in drill] == [("true", "'+48******711")]
    wola_mail = read_csv(
        client.get(
            "/deliveries.csv", headers=auth.auditor, params={"district": "wola", "channel": "email"}
        )
    )
    assert sorted(row["contact"] for row in wola_mail) == ["w***@example.com"] * 3
    nothing = client.get("/deliveries.csv", headers=auth.auditor, params={"district": "bemowo"})
    assert nothing.text.splitlines() == [",".join(delivery_log.CSV_COLUMNS)]


def test_the_export_reads_in_batches_of_its_own(db: sessionmaker[Session], scene: Scene) -> None:
    everything = delivery_log.DeliveryFilter()
    with db() as session:
        page = delivery_log.read_page(session=session, chosen=everything, after=None, limit=1000)
    for batch_size in (1, 5, 17, 100):
        exported = list(delivery_log.export(sessions=db, chosen=everything, batch_size=batch_size))
        assert exported == page.rows
    chunks = list(delivery_log.csv_chunks(page.rows, chunk_rows=5))
    assert len(chunks) == 4  # rows 1-5, 6-10, 11-15, then the rest
    assert "".join(chunks).count("\n") == 18


# The audit trail ----------------------------------------------------------------------


def test_the_audit_trail_pages_newest_first_as_stored(
    client: TestClient, auth: Headers, db: sessionmaker[Session], scene: Scene
) -> None:
    with db() as session:
        stored = session.scalars(select(AuditEvent).order_by(AuditEvent.seq.desc())).all()
    assert len(stored) > 40
    events = every_page(client, auth.auditor, "/audit", limit=7)
    assert [event["seq"] for event in events] == [event.seq for event in stored]
    for shown, event in zip(events, stored, strict=True):
        assert shown["hash"] == event.hash and shown["prev_hash"] == event.prev_hash
        assert datetime.fromisoformat(shown["occurred_at"]) == event.occurred_at
        assert (shown["actor"], shown["action"], shown["object_type"], shown["object_id"]) == (
            event.actor,
            event.action,
            event.object_type,
            event.object_id,
        )
    # Newest first, each record names the hash of the one before it.
    assert all(newer["prev_hash"] == older["hash"] for newer, older in itertools.pairwise(events))
    oldest = every_page(client, auth.admin, "/audit", limit=10, order="oldest")
    assert [event["seq"] for event in oldest] == [event.seq for event in reversed(stored)]
    assert oldest[0]["prev_hash"] == "0" * 64


def test_the_audit_trail_filters_by_object_action_and_actor(
    client: TestClient, auth: Headers, staff: Staff, scene: Scene
) -> None:
    def events(**params: Any) -> list[dict[str, Any]]:
        return every_page(client, auth.auditor, "/audit", limit=2, **params)

    story = events(object_type="alert", object_id=str(scene.actual), order="oldest")
    assert [event["action"] for event in story][:3] == [
        "alert.created",
        "alert.submit",
        "alert.approve",
    ]
    assert "alert.planned" in {event["action"] for event in story}
    planned_event = next(event for event in story if event["action"] == "alert.planned")
    assert planned_event["payload"]["batches"] == 2  # payload is JSON, not a string
    approvals = events(action="alert.approve", actor=f"operator:{staff.approver.id}")
    assert sorted(int(event["object_id"]) for event in approvals) == sorted(
        [scene.actual, scene.exercise, scene.citywide]
    )
    [erasure] = events(action="subscriber.erased")
    assert erasure["object_id"] == str(scene.erased_subscriber)
    assert erasure["payload"] == {"contact_points": 2}
    assert events(actor="operator:999999") == []


@pytest.mark.parametrize(
    ("params", "where"),
    [
        ({"cursor": "@@@"}, ("query", "cursor")),
        ({"cursor": opaque("deliveries:1")}, ("query", "cursor")),
        ({"order": "sideways"}, ("query", "order")),
        ({"limit": -1}, ("query", "limit")),
        ({"actor": "operator:\x00"}, ("query", "actor")),
        ({"object_type": "x" * 33}, ("query", "object_type")),
        ({"colour": "red"}, ("query", "colour")),
    ],
)
def test_a_malformed_audit_parameter_is_named(
    client: TestClient, auth: Headers, params: dict[str, Any], where: tuple[str, str]
) -> None:
    assert where in refusal(client.get("/audit", headers=auth.auditor, params=params))


def test_a_cursor_of_one_order_is_refused_in_the_other(
    client: TestClient, auth: Headers, scene: Scene
) -> None:
    page = client.get("/audit", headers=auth.auditor, params={"limit": 2}).json()
    assert page["next_cursor"] is not None
    answer = client.get(
        "/audit",
        headers=auth.auditor,
        params={"limit": 2, "order": "oldest", "cursor": page["next_cursor"]},
    )
    assert ("query", "cursor") in refusal(answer)


def test_verify_says_intact_then_names_a_tampered_record(
    client: TestClient, auth: Headers, db: sessionmaker[Session], engine: Engine, scene: Scene
) -> None:
    with db() as session:
        records = len(session.scalars(select(AuditEvent.seq)).all())
    answer = client.get("/audit/verify", headers=auth.auditor)
    assert answer.status_code == 200
    assert answer.json() == {
        "intact": True,
        "checked": records,
        "broken_seq": None,
        "broken_id": None,
        "problem": None,
        "problems": {},
        "summary": f"intact: {records} records",
        "checkpoints": 0,
    }
    # What only the database's owner can do: the table refuses UPDATE by trigger.
    with as_database_owner(engine) as connection:
        connection.execute(text("UPDATE audit_events SET actor = 'operator:666' WHERE seq = 5"))
    verdict = client.get("/audit/verify", headers=auth.admin).json()
    assert (verdict["intact"], verdict["checked"], verdict["broken_seq"]) == (False, 4, 5)
    assert "changed" in verdict["problem"]
    assert verdict["summary"].startswith("broken at record seq 5 (id ")


def test_a_checkpoint_from_the_api_shows_a_tail_cut_with_the_tip_put_back(
    client: TestClient, auth: Headers, engine: Engine, scene: Scene
) -> None:
    with engine.connect() as connection:
        copied = connection.execute(text("SELECT seq, hash, seal FROM audit_head")).one()
    client.post("/tokens", headers=auth.auditor, json={"name": "a record after the copy"})
    checkpoint = client.get("/audit/checkpoint", headers=auth.auditor).json()
    assert checkpoint["seq"] == copied.seq + 1
    assert set(checkpoint) == {"audit_checkpoint", "seq", "hash", "taken_at", "seal"}
    kept = client.post("/audit/verify", headers=auth.auditor, json={"checkpoints": [checkpoint]})
    assert (kept.status_code, kept.json()["intact"], kept.json()["checkpoints"]) == (200, True, 1)
    with as_database_owner(engine) as connection:
        connection.execute(text("DELETE FROM audit_events WHERE seq > :seq"), {"seq": copied.seq})
        connection.execute(
            text("UPDATE audit_head SET seq = :seq, hash = :hash, seal = :seal"),
            dict(copied._mapping),
        )
    assert client.get("/audit/verify", headers=auth.auditor).json()["intact"]
    verdict = client.post(
        "/audit/verify", headers=auth.auditor, json={"checkpoints": [checkpoint]}
    ).json()
    assert (verdict["intact"], verdict["broken_seq"]) == (False, copied.seq + 1)
    assert "records were removed from the end" in verdict["problem"]


def test_a_tip_moved_to_the_previous_record_is_caught_over_http(
    client: TestClient, auth: Headers, engine: Engine, scene: Scene
) -> None:
    with as_database_owner(engine) as connection:
        last = connection.execute(text("SELECT max(seq) FROM audit_events")).scalar_one()
        connection.execute(text("DELETE FROM audit_events WHERE seq = :seq"), {"seq": last})
        connection.execute(
            text(
                "UPDATE audit_head SET seq = seq - 1, hash = (SELECT hash FROM audit_events "
                "WHERE seq = :seq)"
            ),
            {"seq": last - 1},
        )
    verdict = client.get("/audit/verify", headers=auth.auditor).json()
    assert (verdict["intact"], verdict["checked"]) == (False, last - 1)
    assert "seal does not match" in verdict["problem"]
    assert "pieczęć się nie zgadza" in verdict["problems"]["pl"]
    assert client.get("/audit/checkpoint", headers=auth.auditor).status_code == 409


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"checkpoints": []}, ("body", "checkpoints")),
        ({"checkpoints": [{"seq": 1}]}, ("body", "checkpoints", "0")),
        (
            {"checkpoints": [{"seq": 1, "hash": 5, "seal": "x", "taken_at": "now"}]},
            ("body", "checkpoints", "0"),
        ),
        (
            {
                "checkpoints": [
                    {
                        "seq": 1,
                        "hash": "a" * 64,
                        "seal": "b" * 64,
                        "taken_at": "2026-12-03T09:00:00+00:00",
                    }
                ]
            },
            ("body", "checkpoints", "0"),
        ),
        ({"checkpoint": {}}, ("body", "checkpoint")),
    ],
)
def test_a_checkpoint_that_is_not_ours_is_named(
    client: TestClient, auth: Headers, body: dict[str, Any], where: tuple[str, ...]
) -> None:
    assert where in refusal(client.post("/audit/verify", headers=auth.auditor, json=body))


# Who may read -------------------------------------------------------------------------


ROUTES = ["/deliveries", "/deliveries.csv", "/audit", "/audit/verify", "/audit/checkpoint"]


@pytest.mark.parametrize("path", ROUTES)
def test_only_auditors_and_admins_may_read(client: TestClient, auth: Headers, path: str) -> None:
    for who in ("auditor", "admin"):
        assert client.get(path, headers=auth.of(who)).status_code == 200, who
    for who in ("operator", "second_operator", "approver"):
        assert client.get(path, headers=auth.of(who)).status_code == 403, who
    assert client.get(path).status_code == 401
    assert client.get(path, headers={"Authorization": "Bearer wsp_forged"}).status_code == 401
    # The credential is checked before a parameter is even looked at.
    assert client.get(path, params={"limit": "many"}).status_code == 401
    assert client.get(path, headers=auth.operator, params={"limit": "many"}).status_code == 403


def test_a_payload_changed_into_no_json_is_listed_as_stored_and_named_by_verify(
    client: TestClient, auth: Headers, engine: Engine, scene: Scene
) -> None:
    with as_database_owner(engine) as connection:
        connection.execute(text("UPDATE audit_events SET payload = '{' WHERE seq = 2"))
    page = client.get("/audit", headers=auth.auditor, params={"order": "oldest", "limit": 3})
    assert page.status_code == 200
    assert page.json()["items"][1]["payload"] == "{"
    verdict = client.get("/audit/verify", headers=auth.auditor).json()
    assert (verdict["intact"], verdict["broken_seq"]) == (False, 2)
