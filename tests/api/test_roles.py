"""Who may call what: every staff route against every role, with no token and with bad
ones. Each role gets exactly what it may: 401 without a valid token, 403 for a role that
may not, and past both checks for one that may. The matrix must name every route that
takes a staff token, so a new route cannot be added without deciding who may call it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from broadcaster.alerts import lifecycle
from broadcaster.alerts import services as alerts
from broadcaster.alerts.drafts import AlertDraft
from broadcaster.audit import verification
from broadcaster.settings import Settings
from broadcaster.staff import tokens
from broadcaster.staff.models import Operator
from tests.api.conftest import Headers
from tests.conftest import Staff, add_resident, send_alert

OPERATOR, APPROVER, AUDITOR, ADMIN = "operator", "approver", "auditor", "admin"
EVERYONE = frozenset({OPERATOR, APPROVER, AUDITOR, ADMIN})
WRITERS = frozenset({OPERATOR, ADMIN})
REVIEWERS = frozenset({APPROVER, ADMIN})
READERS = frozenset({AUDITOR, ADMIN})

ALERT_BODY = {
    "topic": "weather-warning",
    "districts": ["wola"],
    "severity": "Severe",
    "urgency": "Immediate",
    "channels": ["sms"],
    "contents": {"pl": {"title": "Burza", "body": "Silne burze od 18:00."}},
}


@dataclass
class World:
    db: sessionmaker[Session]
    settings: Settings
    staff: Staff

    def person(self, role: str) -> Operator:
        return {
            OPERATOR: self.staff.author,
            APPROVER: self.staff.approver,
            AUDITOR: self.staff.auditor,
            ADMIN: self.staff.admin,
        }[role]

    def alert(self, state: str = "draft") -> int:
        """A fresh alert written by the operator, in `state`."""
        with self.db.begin() as session:
            alert = alerts.create_alert(
                session=session,
                settings=self.settings,
                author=self.staff.author,
                draft=AlertDraft(
                    topic="weather-warning",
                    severity="Severe",
                    urgency="Immediate",
                    channels=["sms"],
                    districts=["wola"],
                    contents={"pl": ("Burza", "Silne burze od 18:00.")},
                ),
            )
            if state != "draft":
                lifecycle.submit_alert(
                    session=session,
                    settings=self.settings,
                    actor=self.staff.author,
                    alert_id=alert.id,
                )
            return alert.id

    def sent_alert(self) -> int:
        """An alert that reached a resident and is done: one an Update may follow."""
        alert_id = self.alert("awaiting")
        with self.db.begin() as session:
            add_resident(
                session,
                self.settings,
                contacts=[("sms", f"6010009{alert_id:02d}")],
                topics=["weather-warning"],
                districts=["wola"],
            )
            lifecycle.approve_alert(
                session=session,
                settings=self.settings,
                approver=self.staff.approver,
                alert_id=alert_id,
            )
        send_alert(self.db, self.settings, alert_id)
        return alert_id

    def checkpoint(self) -> dict[str, Any]:
        """A checkpoint of the audit trail as it stands, as an auditor keeps it."""
        with self.db() as session:
            taken = verification.take_checkpoint(session=session)
        assert taken is not None
        return dict(json.loads(taken.as_line()))

    def token_of(self, role: str) -> int:
        with self.db.begin() as session:
            return tokens.issue_token(
                session=session, operator=self.person(role), name="spare", lifetime_days=1
            ).id


Setup = Callable[[World, str], tuple[str, dict[str, Any] | None]]


def fixed(path: str, body: dict[str, Any] | None = None) -> Setup:
    return lambda _world, _role: (path, body)


def on_alert(suffix: str, state: str = "draft", body: dict[str, Any] | None = None) -> Setup:
    return lambda world, _role: (f"/alerts/{world.alert(state)}{suffix}", body)


FOLLOW_UP = {"msg_type": "update", "contents": {"pl": {"title": "Burza", "body": "Koniec."}}}
LATER = (datetime.now(UTC) + timedelta(hours=3)).isoformat()

# (method, route path as declared, who may, how to build the request)
MATRIX: list[tuple[str, str, frozenset[str], Setup]] = [
    ("GET", "/me", EVERYONE, fixed("/me")),
    ("POST", "/tokens", EVERYONE, fixed("/tokens", {"name": "laptop", "lifetime_days": 7})),
    ("GET", "/tokens", EVERYONE, fixed("/tokens")),
    (
        "DELETE",
        "/tokens/{token_id}",
        EVERYONE,
        lambda world, role: (f"/tokens/{world.token_of(role)}", None),
    ),
    ("GET", "/operators", frozenset({ADMIN}), fixed("/operators")),
    (
        "POST",
        "/operators",
        frozenset({ADMIN}),
        lambda _world, role: (
            "/operators",
            {"username": f"new-{role}", "display_name": "New Person", "role": "auditor"},
        ),
    ),
    ("POST", "/alerts", WRITERS, fixed("/alerts", ALERT_BODY)),
    ("GET", "/alerts", EVERYONE, fixed("/alerts")),
    ("GET", "/alerts/{alert_id}", EVERYONE, on_alert("")),
    ("PUT", "/alerts/{alert_id}", WRITERS, on_alert("", body=ALERT_BODY)),
    ("GET", "/alerts/{alert_id}/preview", EVERYONE, on_alert("/preview")),
    ("GET", "/alerts/{alert_id}/progress", EVERYONE, on_alert("/progress")),
    (
        "POST",
        "/alerts/{alert_id}/schedule",
        WRITERS,
        on_alert("/schedule", body={"send_at": LATER}),
    ),
    ("POST", "/alerts/{alert_id}/submit", WRITERS, on_alert("/submit")),
    ("POST", "/alerts/{alert_id}/approve", REVIEWERS, on_alert("/approve", "awaiting")),
    (
        "POST",
        "/alerts/{alert_id}/reject",
        REVIEWERS,
        on_alert("/reject", "awaiting", {"reason": "Za ogólne."}),
    ),
    (
        "POST",
        "/alerts/{alert_id}/cancel",
        frozenset({OPERATOR, APPROVER, ADMIN}),
        on_alert("/cancel", body={"reason": "Pomyłka."}),
    ),
    (
        "POST",
        "/alerts/{alert_id}/follow-ups",
        WRITERS,
        lambda world, _role: (f"/alerts/{world.sent_alert()}/follow-ups", FOLLOW_UP),
    ),
    ("GET", "/deliveries", READERS, fixed("/deliveries")),
    ("GET", "/deliveries.csv", READERS, fixed("/deliveries.csv")),
    ("GET", "/audit", READERS, fixed("/audit")),
    ("GET", "/audit/verify", READERS, fixed("/audit/verify")),
    (
        "POST",
        "/audit/verify",
        READERS,
        lambda world, _role: ("/audit/verify", {"checkpoints": [world.checkpoint()]}),
    ),
    ("GET", "/audit/checkpoint", READERS, fixed("/audit/checkpoint")),
]


@pytest.fixture
def world(db: sessionmaker[Session], settings: Settings, staff: Staff) -> World:
    return World(db, settings, staff)


def call(client: TestClient, method: str, path: str, body: Any, headers: dict[str, str]) -> Any:
    return client.request(method, path, json=body, headers=headers)


def test_the_matrix_names_every_route_that_takes_a_staff_token(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    secured = {
        (method.upper(), path)
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if operation.get("security")
    }
    assert secured == {(method, path) for method, path, _, _ in MATRIX}


@pytest.mark.parametrize(
    ("method", "route", "allowed", "setup"), MATRIX, ids=[f"{m} {p}" for m, p, _, _ in MATRIX]
)
def test_each_role_gets_exactly_what_it_may(
    client: TestClient,
    auth: Headers,
    world: World,
    method: str,
    route: str,
    allowed: frozenset[str],
    setup: Setup,
) -> None:
    for role in sorted(EVERYONE):
        path, body = setup(world, role)
        answer = call(client, method, path, body, auth.of(role))
        if role in allowed:
            assert answer.status_code < 400, (role, answer.status_code, answer.text)
        else:
            assert answer.status_code == 403, (role, answer.status_code, answer.text)
    path, body = setup(world, ADMIN)
    for headers in (
        {},
        {"Authorization": "Bearer wsp_not-a-real-token"},
        {"Authorization": "Basic YWRtaW46YWRtaW4="},
        {"Authorization": auth.admin["Authorization"].replace("Bearer ", "")},
    ):
        answer = call(client, method, path, body, headers)
        assert answer.status_code == 401, (headers, answer.text)
        assert answer.headers["WWW-Authenticate"] == "Bearer"


def test_an_expired_or_revoked_token_or_a_deactivated_account_gets_401(
    client: TestClient, world: World, db: sessionmaker[Session], staff: Staff
) -> None:
    with db.begin() as session:
        old = tokens.issue_token(
            session=session,
            operator=staff.auditor,
            name="old",
            lifetime_days=1,
            now=datetime.now(UTC) - timedelta(days=2),
        )
        revoked = tokens.issue_token(
            session=session, operator=staff.auditor, name="gone", lifetime_days=1
        )
        tokens.revoke_token(session=session, actor=staff.auditor, token_id=revoked.id)
        leaver = tokens.issue_token(
            session=session, operator=staff.second_author, name="leaver", lifetime_days=1
        )
        session.get_one(Operator, staff.second_author.id).active = False
    for token in (old.token, revoked.token, leaver.token):
        answer = client.get("/me", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 401


def test_another_persons_objects_are_refused_with_403(
    client: TestClient, auth: Headers, world: World
) -> None:
    draft = world.alert()
    assert (
        client.put(f"/alerts/{draft}", json=ALERT_BODY, headers=auth.second_operator).status_code
        == 403
    )
    assert client.post(f"/alerts/{draft}/submit", headers=auth.second_operator).status_code == 403
    later = {"send_at": LATER}
    assert (
        client.post(
            f"/alerts/{draft}/schedule", json=later, headers=auth.second_operator
        ).status_code
        == 403
    )
    # Somebody else's token: only its owner or an admin revokes it.
    theirs = world.token_of(APPROVER)
    assert client.delete(f"/tokens/{theirs}", headers=auth.operator).status_code == 403
    assert client.delete(f"/tokens/{theirs}", headers=auth.admin).status_code == 204


def test_tokens_are_issued_shown_once_listed_and_revoked_over_http(
    client: TestClient, auth: Headers
) -> None:
    issued = client.post(
        "/tokens", json={"name": "tablet", "lifetime_days": 30}, headers=auth.auditor
    )
    assert issued.status_code == 201
    token = issued.json()["token"]
    mine = {"Authorization": f"Bearer {token}"}
    assert client.get("/me", headers=mine).json()["role"] == "auditor"
    listed = client.get("/tokens", headers=mine).json()
    assert issued.json()["id"] in [t["id"] for t in listed]
    assert all("token" not in t for t in listed)
    assert client.delete(f"/tokens/{issued.json()['id']}", headers=mine).status_code == 204
    assert client.get("/me", headers=mine).status_code == 401
    bad = client.post("/tokens", json={"name": "x", "lifetime_days": 1000}, headers=auth.auditor)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "lifetime_days"]


def test_an_admin_creates_accounts_and_a_taken_username_is_named(
    client: TestClient, auth: Headers
) -> None:
    body = {"username": "zofia", "display_name": "Zofia Nowak", "role": "approver"}
    created = client.post("/operators", json=body, headers=auth.admin)
    assert created.status_code == 201 and created.json()["role"] == "approver"
    again = client.post("/operators", json=body, headers=auth.admin)
    assert again.status_code == 422 and again.json()["detail"][0]["loc"] == ["body", "username"]
    wrong = client.post("/operators", json={**body, "role": "king"}, headers=auth.admin)
    assert wrong.status_code == 422 and wrong.json()["detail"][0]["loc"] == ["body", "role"]
