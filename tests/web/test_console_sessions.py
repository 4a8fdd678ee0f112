"""The console's own sessions: the browser holds a secret that is not the token, and the
server ends the session for good on sign-out, idling, age, and with its token or account.
Time is moved by setting a session's timestamps in the database."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from broadcaster.audit.models import AuditEvent
from broadcaster.db.engine import utcnow
from broadcaster.http.app import create_app
from broadcaster.settings import Settings
from broadcaster.staff import tokens
from broadcaster.staff.models import ConsoleSession, Operator, SessionEnd
from tests.api.conftest import Outbox
from tests.conftest import Staff
from tests.web.conftest import BASE, Browser

COOKIE = "wsp_staff"
SIGN_IN_HERE = "/console/sign-in?next=%2Fconsole"


def token_of(db: sessionmaker[Session], person: Operator, name: str = "console") -> str:
    with db.begin() as session:
        return tokens.issue_token(
            session=session, operator=person, name=name, lifetime_days=1
        ).token


def sign_in(browser: Browser, token: str) -> httpx.Response:
    answer = browser.submit(
        "/console/sign-in", "/console/sign-in", {"token": token, "next": "/console"}
    )
    assert answer.status_code == 303, answer.text
    return answer


def held(browser: Browser) -> str:
    """The session cookie the browser now holds."""
    value = browser.client.cookies.get(COOKIE)
    assert value, "the browser holds no session cookie"
    return value


def opens_console(web: TestClient, cookie: str) -> bool:
    """Whether a browser holding only `cookie` (a copy of someone's) gets the alert list."""
    # No `with`: leaving a TestClient's context would dispose of the app's engine.
    other = TestClient(web.app, base_url=BASE, cookies={COOKIE: cookie})
    answer = other.get("/console", follow_redirects=False)
    if answer.status_code == 200:
        return True
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == SIGN_IN_HERE
    return False


def the_session(db: sessionmaker[Session], cookie: str) -> ConsoleSession:
    digest = hashlib.sha256(cookie.encode()).hexdigest()
    with db() as session:
        row = session.scalars(
            select(ConsoleSession).where(ConsoleSession.secret_hash == digest)
        ).one()
        session.expunge(row)
    return row


def move_session(
    db: sessionmaker[Session], cookie: str, *, opened_ago: timedelta, seen_ago: timedelta
) -> None:
    digest = hashlib.sha256(cookie.encode()).hexdigest()
    now = utcnow()
    with db.begin() as session:
        row = session.scalars(
            select(ConsoleSession).where(ConsoleSession.secret_hash == digest)
        ).one()
        row.created_at = now - opened_ago
        row.last_seen_at = now - seen_ago


@pytest.fixture
def signed(visitor: Browser, db: sessionmaker[Session], staff: Staff) -> str:
    """The visitor signed in as the auditor; the cookie their browser holds."""
    sign_in(visitor, token_of(db, staff.auditor))
    return held(visitor)


def test_a_cookie_replayed_after_sign_out_is_refused(
    web: TestClient, visitor: Browser, db: sessionmaker[Session], signed: str, staff: Staff
) -> None:
    assert opens_console(web, signed)  # a copy works while the session lives
    assert visitor.submit("/console", "/console/sign-out", {}).status_code == 303
    assert not opens_console(web, signed)
    ended = the_session(db, signed)
    assert ended.ended_at is not None and ended.end_reason is SessionEnd.SIGNED_OUT
    # Signing in again does not bring the old cookie back.
    sign_in(visitor, token_of(db, staff.auditor))
    assert held(visitor) != signed
    assert not opens_console(web, signed)


def test_the_cookie_carries_no_token_and_the_database_no_secret(
    visitor: Browser, db: sessionmaker[Session], staff: Staff
) -> None:
    token = token_of(db, staff.author)
    answer = sign_in(visitor, token)
    set_cookies = answer.headers.get_list("set-cookie")
    assert any(c.startswith(f"{COOKIE}=") for c in set_cookies)
    assert all(token not in c for c in set_cookies)
    cookie = held(visitor)
    assert token not in cookie and cookie not in token
    row = the_session(db, cookie)
    assert row.secret_hash == hashlib.sha256(cookie.encode()).hexdigest()
    assert row.secret_hash != cookie
    assert (row.operator_id, row.ended_at) == (staff.author.id, None)
    assert row.created_at == row.last_seen_at


@pytest.fixture
def published_over_https(
    app_settings: Settings, outbox: Outbox, staff: Staff
) -> Iterator[TestClient]:
    settings = app_settings.model_copy(update={"public_base_url": "https://alerty.um.warszawa.pl"})
    with TestClient(
        create_app(
            settings, publish=outbox.publish, notify=outbox.notify, plan_now=outbox.plan_now
        ),
        base_url="https://testserver",
    ) as client:
        yield client


def test_the_cookie_is_secure_when_published_over_https(
    published_over_https: TestClient, db: sessionmaker[Session], staff: Staff
) -> None:
    browser = Browser(published_over_https)
    answer = sign_in(browser, token_of(db, staff.auditor))
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith(COOKIE))
    attributes = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "secure", "samesite=lax", "path=/console"} <= attributes
    signed_out = browser.submit("/console", "/console/sign-out", {})
    forgotten = next(c for c in signed_out.headers.get_list("set-cookie") if c.startswith(COOKIE))
    assert "secure" in forgotten.lower() and "path=/console" in forgotten.lower()


def test_a_session_idle_too_long_ends_for_good(
    web: TestClient, visitor: Browser, db: sessionmaker[Session], signed: str, settings: Settings
) -> None:
    idle = timedelta(seconds=settings.console_idle_seconds)
    move_session(db, signed, opened_ago=idle * 2, seen_ago=idle - timedelta(seconds=5))
    assert opens_console(web, signed)
    move_session(db, signed, opened_ago=idle * 2, seen_ago=idle + timedelta(seconds=1))
    answer = visitor.get("/console")
    assert answer.headers["location"] == SIGN_IN_HERE
    assert f'{COOKIE}=""' in answer.headers["set-cookie"]  # the browser forgets it
    assert the_session(db, signed).end_reason is SessionEnd.IDLE
    # A request now does not revive it, however recent its timestamps are made.
    move_session(db, signed, opened_ago=timedelta(0), seen_ago=timedelta(0))
    assert not opens_console(web, signed)


def test_a_session_ends_at_its_age_even_when_in_use(
    web: TestClient, db: sessionmaker[Session], signed: str, settings: Settings
) -> None:
    lifetime = timedelta(seconds=settings.console_session_seconds)
    move_session(db, signed, opened_ago=lifetime - timedelta(seconds=5), seen_ago=timedelta(0))
    assert opens_console(web, signed)
    move_session(db, signed, opened_ago=lifetime + timedelta(seconds=1), seen_ago=timedelta(0))
    assert not opens_console(web, signed)
    assert the_session(db, signed).end_reason is SessionEnd.EXPIRED


def test_last_seen_is_written_at_most_once_a_minute(
    web: TestClient, db: sessionmaker[Session], signed: str
) -> None:
    move_session(db, signed, opened_ago=timedelta(hours=1), seen_ago=timedelta(seconds=30))
    before = the_session(db, signed).last_seen_at
    assert opens_console(web, signed)
    assert the_session(db, signed).last_seen_at == before
    move_session(db, signed, opened_ago=timedelta(hours=1), seen_ago=timedelta(minutes=5))
    assert opens_console(web, signed)
    assert utcnow() - the_session(db, signed).last_seen_at < timedelta(seconds=30)


def test_revoking_the_token_ends_the_sessions_opened_with_it(
    web: TestClient, visitor: Browser, db: sessionmaker[Session], staff: Staff
) -> None:
    first, second = token_of(db, staff.auditor, "laptop"), token_of(db, staff.auditor, "desk")
    sign_in(visitor, first)
    with_first = held(visitor)
    other = Browser(TestClient(web.app, base_url=BASE))
    sign_in(other, second)
    with_second = held(other)
    with db.begin() as session:
        row = tokens.authenticate_token(session=session, presented=first)[0]
        tokens.revoke_token(session=session, actor=staff.admin, token_id=row.id)
    assert not opens_console(web, with_first)
    assert the_session(db, with_first).end_reason is SessionEnd.TOKEN_ENDED
    assert opens_console(web, with_second)  # another token's session goes on


def test_deactivating_the_account_ends_its_session_for_good(
    web: TestClient, db: sessionmaker[Session], signed: str, staff: Staff
) -> None:
    with db.begin() as session:
        session.get_one(Operator, staff.auditor.id).active = False
    assert not opens_console(web, signed)
    with db.begin() as session:
        session.get_one(Operator, staff.auditor.id).active = True
    assert not opens_console(web, signed)
    assert the_session(db, signed).end_reason is SessionEnd.TOKEN_ENDED


def test_a_cookie_planted_before_sign_in_is_not_reused(
    web: TestClient, visitor: Browser, db: sessionmaker[Session], staff: Staff
) -> None:
    planted = "chosen-by-someone-else-0123456789abcdefghijk"
    visitor.client.cookies.set(COOKIE, planted, domain="testserver.local", path="/console")
    sign_in(visitor, token_of(db, staff.approver))
    assert held(visitor) != planted
    assert not opens_console(web, planted)
    assert opens_console(web, held(visitor))


def test_a_planted_live_session_is_ended_by_signing_in(
    web: TestClient, visitor: Browser, db: sessionmaker[Session], staff: Staff
) -> None:
    """Someone plants their own live session in another's browser: signing in there
    opens the other person's own session and ends the planted one."""
    planter = Browser(TestClient(web.app, base_url=BASE))
    sign_in(planter, token_of(db, staff.second_author))
    planted = held(planter)
    visitor.client.cookies.set(COOKIE, planted, domain="testserver.local", path="/console")
    sign_in(visitor, token_of(db, staff.approver))
    mine = held(visitor)
    assert mine != planted
    assert the_session(db, mine).operator_id == staff.approver.id
    assert the_session(db, planted).end_reason is SessionEnd.SIGNED_IN_AGAIN
    assert not opens_console(web, planted)


def test_signing_in_and_out_is_audited_without_secrets(
    visitor: Browser, db: sessionmaker[Session], staff: Staff
) -> None:
    token = token_of(db, staff.auditor)
    sign_in(visitor, token)
    cookie = held(visitor)
    visitor.submit("/console", "/console/sign-out", {})
    with db() as session:
        events = session.scalars(
            select(AuditEvent)
            .where(AuditEvent.object_type == "console_session")
            .order_by(AuditEvent.seq)
        ).all()
        row = the_session(db, cookie)
        token_id = tokens.authenticate_token(session=session, presented=token)[0].id
        recorded = [(e.actor, e.action, e.object_id, json.loads(e.payload)) for e in events]
        written = " ".join(e.payload for e in events)
    actor = f"operator:{staff.auditor.id}"
    assert recorded == [
        (actor, "console.signed_in", str(row.id), {"api_token_id": token_id}),
        (actor, "console.signed_out", str(row.id), {}),
    ]
    assert token not in written and cookie not in written
