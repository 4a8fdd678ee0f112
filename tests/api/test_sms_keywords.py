"""SMS keywords through SMSAPI's incoming-SMS callback: STOP and START, the secret in the
callback URLs, and everything else answered `OK` and ignored."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from broadcaster.audit.models import AuditEvent
from broadcaster.http.app import create_app
from broadcaster.residents.keywords import keyword
from broadcaster.settings import Settings
from subscribers.models import ContactPoint
from tests.api.conftest import Outbox
from tests.conftest import add_resident

SECRET = "incoming-secret-0123456789"
URL = f"/callbacks/smsapi/incoming/{SECRET}"
REPORTS = f"/callbacks/smsapi/reports/{SECRET}"
PHONE = "+48601000700"


@pytest.fixture
def sms_client(app_settings: Settings, outbox: Outbox) -> Iterator[TestClient]:
    settings = app_settings.model_copy(update={"smsapi_callback_secret": SECRET})
    app = create_app(
        settings, publish=outbox.publish, notify=outbox.notify, plan_now=outbox.plan_now
    )
    with TestClient(app) as client:
        yield client


@pytest.fixture
def phone(db: sessionmaker[Session], settings: Settings) -> int:
    with db.begin() as session:
        resident = add_resident(
            session,
            settings,
            contacts=[("sms", PHONE)],
            topics=["weather-warning"],
            districts=["*"],
        )
        return resident.contact_points[0].id


def incoming(text: str, sender: str = "48601000700") -> dict[str, str]:
    """The form SMSAPI posts for an SMS received on our number."""
    return {
        "sms_to": "48500600700",
        "sms_from": sender,
        "sms_text": text,
        "sms_date": "1767225600",
        "MsgId": "1767225600123456",
        "username": "warszawa",
    }


def unsubscribed(db: sessionmaker[Session], point_id: int) -> bool:
    with db() as session:
        point = session.get(ContactPoint, point_id)
        assert point is not None
        return point.unsubscribed_at is not None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("STOP", "stop"),
        ("  stop\n", "stop"),
        ("Nie.", "nie"),
        ("WYPISZ?", "wypisz"),
        ("Wypisz się!", "wypisz sie"),
        ("Rezygnuję", "rezygnuje"),
        ("Стоп", "стоп"),
        ("tak", "tak"),
    ],
)
def test_keywords_ignore_case_accents_and_punctuation(text: str, expected: str) -> None:
    assert keyword(text) == expected


@pytest.mark.parametrize("text", ["STOP", " stop ", "Nie", "NIE!", "wypisz?", "Wypisz się"])
def test_stop_words_unsubscribe_the_phone(
    sms_client: TestClient, db: sessionmaker[Session], phone: int, text: str
) -> None:
    answer = sms_client.post(URL, data=incoming(text))
    assert answer.status_code == 200 and answer.text == "OK"
    assert unsubscribed(db, phone)


def test_start_resubscribes_and_get_works_too(
    sms_client: TestClient, db: sessionmaker[Session], phone: int
) -> None:
    sms_client.post(URL, data=incoming("STOP"))
    assert unsubscribed(db, phone)
    answer = sms_client.get(URL, params=incoming("Tak"))
    assert answer.text == "OK"
    assert not unsubscribed(db, phone)


def test_start_does_not_bring_in_an_unproven_phone(
    sms_client: TestClient, db: sessionmaker[Session], settings: Settings
) -> None:
    with db.begin() as session:
        resident = add_resident(
            session,
            settings,
            contacts=[("sms", PHONE)],
            topics=["weather-warning"],
            districts=["*"],
            verify=False,
        )
        point_id = resident.contact_points[0].id
    assert sms_client.post(URL, data=incoming("START")).text == "OK"
    with db() as session:
        point = session.get(ContactPoint, point_id)
        assert point is not None and point.verified_at is None


@pytest.mark.parametrize(
    ("text", "sender"),
    [
        ("stop the rain please", "48601000700"),
        ("Jaka pogoda?", "48601000700"),
        ("STOP", "48609999999"),  # not registered
        ("STOP", "4930123456"),  # not a number we could have registered
        ("STOP", "WARSZAWA"),
    ],
)
def test_anything_else_is_ignored_and_still_ok(
    sms_client: TestClient, db: sessionmaker[Session], phone: int, text: str, sender: str
) -> None:
    answer = sms_client.post(URL, data=incoming(text, sender))
    assert answer.status_code == 200 and answer.text == "OK"
    assert not unsubscribed(db, phone)


def test_a_forged_callback_is_refused(
    sms_client: TestClient, db: sessionmaker[Session], phone: int
) -> None:
    for url in [
        "/callbacks/smsapi/incoming/guessed-secret-0123456",
        "/callbacks/smsapi/incoming/ż",
    ]:
        answer = sms_client.post(url, data=incoming("STOP"))
        assert answer.status_code == 403
    assert not unsubscribed(db, phone)


def test_without_a_configured_secret_every_call_is_refused(
    client: TestClient, db: sessionmaker[Session], phone: int, outbox: Outbox
) -> None:
    assert client.post("/callbacks/smsapi/incoming/x", data=incoming("STOP")).status_code == 403
    assert client.post(URL, data=incoming("STOP")).status_code == 403
    report = {"MsgId": "1", "status": "404", "idx": "7"}
    assert client.get(REPORTS, params=report).status_code == 403
    assert client.post(REPORTS, data=report).status_code == 403
    assert not unsubscribed(db, phone)
    assert outbox.published == []


@pytest.mark.parametrize("path", [REPORTS, URL])
def test_a_callback_with_another_secret_is_refused(
    sms_client: TestClient, outbox: Outbox, path: str
) -> None:
    forged = path.replace(SECRET, SECRET[:-1] + "X")
    answer = sms_client.post(forged, data={"MsgId": "1", "status": "404", "idx": "7"})
    assert answer.status_code == 403
    assert sms_client.get(path.rsplit("/", 1)[0]).status_code == 404
    assert outbox.published == []


def test_a_callback_without_sender_or_text_names_the_field(sms_client: TestClient) -> None:
    fields = incoming("STOP")
    del fields["sms_from"]
    answer = sms_client.post(URL, data=fields)
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["field"] == "sms_from"


def test_delivery_reports_still_arrive(sms_client: TestClient, outbox: Outbox) -> None:
    answer = sms_client.get(REPORTS, params={"MsgId": "1", "status": "404", "idx": "7"})
    assert answer.text == "OK"
    assert outbox.published == [{"provider_id": "1", "status": "404", "idx": "7"}]


def test_a_stop_is_audited_without_the_number(
    sms_client: TestClient, db: sessionmaker[Session], phone: int
) -> None:
    sms_client.post(URL, data=incoming("STOP"))
    with db() as session:
        events = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "contact.unsubscribed")
        ).all()
    assert [json.loads(e.payload)["via"] for e in events] == ["sms-keyword"]
    assert "601000700" not in events[0].payload
