"""The HTTP application over a real database (SQLite and PostgreSQL), driven by
FastAPI's TestClient; staff authenticate with real tokens issued to the `staff` fixture.

The two hand-offs to the workers are collected instead of queued: delivery reports
(`published`) and the ids of what was held for a worker (`handed`). Each is done at once
by the function the worker runs, in a transaction of its own, as the worker would: a
reminder or a sign-up (the API does not look the address up) is turned into its
notices, and a notice is rendered (`notices`) and forgotten, as if sent.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from broadcaster.http.app import create_app
from broadcaster.settings import Settings
from broadcaster.staff import tokens
from subscribers import pending
from subscribers.models import PendingKind
from subscribers.notices import Notice, remind, render, sign_up
from subscribers.pending import Queued
from tests.conftest import Staff


@dataclass
class Outbox:
    sessions: sessionmaker[Session]
    settings: Settings
    published: list[dict[str, str]] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    # Every id handed to a worker, in order.
    handed: list[Queued] = field(default_factory=list)
    # Alerts handed to the planner as approved for now: (alert id, urgent).
    planned: list[tuple[int, bool]] = field(default_factory=list)

    def plan_now(self, alert_id: int, urgent: bool) -> None:
        self.planned.append((alert_id, urgent))

    def publish(self, reports: list[dict[str, str]]) -> None:
        self.published.extend(reports)

    def notify(self, handed: Queued) -> None:
        self.handed.append(handed)
        now = time.time()
        with self.sessions.begin() as session:
            if handed.kind is PendingKind.NOTICE:
                notice = render(session=session, settings=self.settings, queued=handed)
                self.notices += [notice] if notice is not None else []
                pending.forget(session=session, ids=[handed.id])
                return
            if handed.kind is PendingKind.REMINDER:
                found = remind(session=session, settings=self.settings, queued=handed, now=now)
                queued = [found] if found is not None else []
            else:
                queued = sign_up(session=session, settings=self.settings, queued=handed, now=now)
        for notice_id in queued:
            self.notify(notice_id)


@pytest.fixture
def app_settings(settings: Settings, database_url: str) -> Settings:
    return settings.model_copy(update={"database_url": database_url})


@pytest.fixture
def outbox(db: sessionmaker[Session], app_settings: Settings) -> Outbox:
    return Outbox(db, app_settings)


@pytest.fixture
def client(app_settings: Settings, outbox: Outbox) -> Iterator[TestClient]:
    app = create_app(
        app_settings, publish=outbox.publish, notify=outbox.notify, plan_now=outbox.plan_now
    )
    with TestClient(app) as test_client:
        yield test_client


@dataclass
class Headers:
    """Authorization headers for each member of `staff`, by role name."""

    operator: dict[str, str]
    second_operator: dict[str, str]
    approver: dict[str, str]
    auditor: dict[str, str]
    admin: dict[str, str]

    def of(self, who: str) -> dict[str, str]:
        headers: dict[str, str] = getattr(self, who)
        return headers


@pytest.fixture
def auth(db: sessionmaker[Session], staff: Staff) -> Headers:
    with db.begin() as session:
        issued = {
            name: tokens.issue_token(
                session=session, operator=person, name="tests", lifetime_days=1
            ).token
            for name, person in [
                ("operator", staff.author),
                ("second_operator", staff.second_author),
                ("approver", staff.approver),
                ("auditor", staff.auditor),
                ("admin", staff.admin),
            ]
        }
    return Headers(**{name: {"Authorization": f"Bearer {token}"} for name, token in issued.items()})
