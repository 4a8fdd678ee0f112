"""The web console over a real database (SQLite and PostgreSQL), driven as a browser
without scripts drives it: GET a page, read its form token, POST the form.

The browser itself (Chromium) drives the same pages in tests/e2e.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from broadcaster.alerts import lifecycle
from broadcaster.alerts import services as alerts
from broadcaster.alerts.drafts import AlertDraft
from broadcaster.http.app import create_app
from broadcaster.settings import Settings
from broadcaster.staff import tokens
from channels.interfaces import Outcome
from tests.api.conftest import Outbox, app_settings, outbox  # noqa: F401 - fixtures
from tests.conftest import Staff, add_sms_residents, send_alert

BASE = "http://testserver"


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, "the page has no form token"
    return found[1]


def field_error(page: str, name: str) -> str | None:
    """The error shown next to field `name` (and tied to it for screen readers)."""
    found = re.search(rf'<p class="field-error" id="{re.escape(name)}-error">([^<]*)</p>', page)
    if found is None:
        return None
    assert f'aria-describedby="{name}-error"' in page, f"{name}'s error is not tied to it"
    return html.unescape(found[1])


@dataclass
class Browser:
    """A scriptless browser: keeps cookies, follows no redirect by itself."""

    client: TestClient

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.get(path, follow_redirects=False, **kwargs)

    def submit(
        self, page_path: str, action: str, fields: dict[str, Any], **kwargs: Any
    ) -> httpx.Response:
        """Open `page_path`, then post `fields` to `action` with the page's form token."""
        opened = self.get(page_path)
        assert opened.status_code == 200, opened.text
        data = {"csrf": csrf_of(opened.text), **fields}
        return self.client.post(action, data=data, follow_redirects=False, **kwargs)


@pytest.fixture
def web(app_settings: Settings, outbox: Outbox) -> Iterator[TestClient]:  # noqa: F811
    app = create_app(
        app_settings, publish=outbox.publish, notify=outbox.notify, plan_now=outbox.plan_now
    )
    with TestClient(app, base_url=BASE) as client:
        yield client


@pytest.fixture
def visitor(web: TestClient) -> Browser:
    return Browser(web)


@dataclass
class People:
    """One signed-in browser per member of `staff`."""

    operator: Browser
    second_operator: Browser
    approver: Browser
    auditor: Browser
    admin: Browser


@pytest.fixture
def people(
    app_settings: Settings,  # noqa: F811
    outbox: Outbox,  # noqa: F811
    db: sessionmaker[Session],
    staff: Staff,
) -> Iterator[People]:
    app = create_app(
        app_settings, publish=outbox.publish, notify=outbox.notify, plan_now=outbox.plan_now
    )
    made: dict[str, Browser] = {}
    clients: list[TestClient] = []
    for name, person in [
        ("operator", staff.author),
        ("second_operator", staff.second_author),
        ("approver", staff.approver),
        ("auditor", staff.auditor),
        ("admin", staff.admin),
    ]:
        with db.begin() as session:
            token = tokens.issue_token(
                session=session, operator=person, name="console", lifetime_days=1
            ).token
        client = TestClient(app, base_url=BASE).__enter__()
        clients.append(client)
        browser = Browser(client)
        signed = browser.submit(
            "/console/sign-in", "/console/sign-in", {"token": token, "next": "/console"}
        )
        assert signed.status_code == 303, signed.text
        made[name] = browser
    yield People(**made)
    for client in clients:
        client.__exit__(None, None, None)


def sent_alert(
    db: sessionmaker[Session], settings: Settings, staff: Staff, outcome: Outcome = Outcome.SENT
) -> int:
    """An alert to two residents of Wola, approved and sent to both, each message ending
    as `outcome` says (its id)."""
    with db.begin() as session:
        add_sms_residents(session, settings, "wola")
        alert = alerts.create_alert(
            session=session,
            settings=settings,
            author=staff.author,
            draft=AlertDraft(
                topic="weather-warning",
                severity="Severe",
                urgency="Expected",
                channels=["sms"],
                contents={"pl": ("Burze", "Silne burze od 18:00.")},
                districts=["wola"],
            ),
        )
        lifecycle.submit_alert(
            session=session, settings=settings, actor=staff.author, alert_id=alert.id
        )
        lifecycle.approve_alert(
            session=session, settings=settings, approver=staff.approver, alert_id=alert.id
        )
        alert_id = alert.id
    send_alert(db, settings, alert_id, outcome=outcome)
    return alert_id
