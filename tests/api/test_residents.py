"""The residents' side of the API, over HTTP on both databases: signing up, proving
contact points, managing through signed links, one-click unsubscribe, and the limits on
what residents can make us send."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from broadcaster.http.app import create_app
from broadcaster.residents.services import CODE_PROBLEMS
from broadcaster.settings import Settings
from subscribers import links
from subscribers.models import (
    ContactPoint,
    PendingKind,
    PendingRequest,
    Subscriber,
    Subscription,
    VerificationCode,
)
from subscribers.notices import Notice, NoticeKind
from subscribers.verification import CodeCheck
from tests.api.conftest import Outbox
from tests.conftest import TEST_SECRET, add_resident

CODE_PROBLEM = CODE_PROBLEMS[CodeCheck.WRONG]
PHONE = "601 000 700"
E164 = "+48601000700"
EMAIL = "Jan.Kowalski@example.com"
PUSH = "fcm-token_" + "x" * 60
REDIS_URL = "redis://127.0.0.1:6379/9"


def sign_up(client: TestClient, *contacts: tuple[str, str], **changes: Any) -> Any:
    body: dict[str, Any] = {
        "contacts": [{"channel": c, "address": a} for c, a in contacts],
        "topics": ["weather-warning"],
        "districts": ["wola", "mokotow"],
        "language": "pl",
    }
    body.update(changes)
    return client.post("/residents/subscribe", json=body)


def notices_of(outbox: Outbox, kind: NoticeKind) -> list[Notice]:
    return [n for n in outbox.notices if n.kind is kind]


def path_of(url: str) -> str:
    return urlsplit(url).path


def manage_path(subscriber_id: int, lifetime: int = 3600) -> str:
    token = links.manage_token(TEST_SECRET, subscriber_id, int(time.time()) + lifetime)
    return f"/manage/{token}"


def count(db: sessionmaker[Session], model: Any) -> int:
    with db() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def point_by(db: sessionmaker[Session], address: str) -> ContactPoint:
    with db() as session:
        point = session.scalar(select(ContactPoint).where(ContactPoint.address == address))
        assert point is not None
        session.expunge(point)
        return point


# -- signing up and proving -----------------------------------------------------------


def test_sign_up_sends_a_code_by_sms_and_a_link_by_email_and_the_code_verifies(
    client: TestClient, outbox: Outbox, db: sessionmaker[Session]
) -> None:
    answer = sign_up(
        client, ("sms", PHONE), ("email", EMAIL), quiet_hours={"start": "22:00", "end": "07:00"}
    )
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "accepted"
    [code] = notices_of(outbox, NoticeKind.CODE)
    [confirm] = notices_of(outbox, NoticeKind.CONFIRM)
    assert (code.channel, code.address, code.language) == ("sms", E164, "pl")
    assert code.code.isdigit() and len(code.code) == 6
    assert confirm.address == "jan.kowalski@example.com" and "/residents/confirm/" in confirm.url
    # Each was held for the worker until it was sent, then forgotten.
    assert count(db, PendingRequest) == 0
    assert point_by(db, E164).verified_at is None

    wrong = "000000" if code.code != "000000" else "111111"
    refused = client.post(
        "/residents/verify", json={"channel": "sms", "address": PHONE, "code": wrong}
    )
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["field"] == "code"
    with db() as session:
        # The wrong try was committed, though the answer was an error.
        assert session.scalar(select(func.max(VerificationCode.attempts))) == 1

    verified = client.post(
        "/residents/verify", json={"channel": "sms", "address": PHONE, "code": code.code}
    )
    assert verified.status_code == 200, verified.text
    assert verified.json()["status"] == "verified"
    assert point_by(db, E164).verified_at is not None
    [manage] = notices_of(outbox, NoticeKind.MANAGE)
    assert manage.address == E164
    # The link the resident receives opens their subscription, quiet hours included.
    assert path_of(manage.url).startswith("/my/")  # the resident's page
    view = client.get(path_of(manage.url).replace("/my/", "/manage/")).json()
    assert view["quiet_hours"] == {"start": "22:00:00", "end": "07:00:00"}
    assert {p["channel"] for p in view["contact_points"]} == {"sms", "email"}
    assert E164 not in str(view)


def test_a_push_token_is_proven_by_the_code_the_app_received(
    client: TestClient, outbox: Outbox, db: sessionmaker[Session]
) -> None:
    assert sign_up(client, ("push", PUSH), language="uk").status_code == 202
    [code] = notices_of(outbox, NoticeKind.CODE)
    assert code.channel == "push" and code.language == "uk"
    assert code.message().data["code"] == code.code
    answer = client.post(
        "/residents/verify", json={"channel": "push", "address": PUSH, "code": code.code}
    )
    assert answer.status_code == 200
    assert point_by(db, PUSH).verified_at is not None


def test_an_unknown_address_answers_like_a_wrong_code(client: TestClient) -> None:
    answer = client.post(
        "/residents/verify", json={"channel": "sms", "address": "601999999", "code": "123456"}
    )
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["msg"] == CODE_PROBLEM


def test_a_locked_code_answers_like_a_wrong_one(
    client: TestClient, db: sessionmaker[Session], settings: Settings
) -> None:
    """Otherwise a stranger could tell that an address has a sign-up waiting."""
    with db.begin() as session:
        add_resident(
            session,
            settings,
            contacts=[("sms", "601000777")],
            topics=["weather-warning"],
            districts=["wola"],
            verify=False,
        )
    wrong = {"channel": "sms", "address": "601000777", "code": "000000"}
    answers = [client.post("/residents/verify", json=wrong) for _ in range(8)]
    assert {a.status_code for a in answers} == {422}
    assert {a.json()["detail"][0]["msg"] for a in answers} == {CODE_PROBLEM}


def test_email_link_get_only_shows_a_button_and_post_confirms(
    client: TestClient, outbox: Outbox, db: sessionmaker[Session]
) -> None:
    sign_up(client, ("email", EMAIL))
    [confirm] = notices_of(outbox, NoticeKind.CONFIRM)
    path = path_of(confirm.url)
    page = client.get(path)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert 'method="post"' in page.text and f'action="{path}"' in page.text
    assert point_by(db, "jan.kowalski@example.com").verified_at is None
    assert notices_of(outbox, NoticeKind.MANAGE) == []

    done = client.post(path)
    assert done.status_code == 200, done.text
    assert point_by(db, "jan.kowalski@example.com").verified_at is not None
    assert len(notices_of(outbox, NoticeKind.MANAGE)) == 1
    # Twice is harmless, and sends no second link.
    assert client.post(path).status_code == 200
    assert len(notices_of(outbox, NoticeKind.MANAGE)) == 1


def test_forged_and_expired_email_links_are_refused(
    client: TestClient, outbox: Outbox, db: sessionmaker[Session]
) -> None:
    sign_up(client, ("email", EMAIL))
    point = point_by(db, "jan.kowalski@example.com")
    [confirm] = notices_of(outbox, NoticeKind.CONFIRM)
    token = confirm.url.rsplit("/", 1)[1]
    forged = token[:-1] + ("0" if token[-1] != "0" else "1")
    for method in (client.get, client.post):
        assert method(f"/residents/confirm/{forged}").status_code == 404
    stale = links.confirm_token(TEST_SECRET, point.id, "123456", int(time.time()) - 1)
    for method in (client.get, client.post):
        assert method(f"/residents/confirm/{stale}").status_code == 410
    assert point_by(db, "jan.kowalski@example.com").verified_at is None


def test_an_email_link_replaced_by_a_newer_one_no_longer_confirms(
    client: TestClient, outbox: Outbox, db: sessionmaker[Session], settings: Settings
) -> None:
    sign_up(client, ("email", EMAIL))
    assert (
        client.post("/residents/codes", json={"channel": "email", "address": EMAIL}).status_code
        == 202
    )
    old, new = notices_of(outbox, NoticeKind.CONFIRM)
    # Clicked again and again (or by a link scanner): never counted as tries of the new.
    for _ in range(settings.verification_max_attempts + 1):
        assert client.post(path_of(old.url)).status_code == 410
    assert client.post(path_of(new.url)).status_code == 200
    assert point_by(db, "jan.kowalski@example.com").verified_at is not None


def test_signing_up_a_proven_address_reveals_nothing_and_tells_its_owner(
    client: TestClient, outbox: Outbox, db: sessionmaker[Session], settings: Settings
) -> None:
    with db.begin() as session:
        add_resident(
            session,
            settings,
            contacts=[("sms", PHONE)],
            topics=["weather-warning"],
            districts=["*"],
        )
    fresh = sign_up(client, ("sms", "602000800"))
    taken = sign_up(client, ("sms", PHONE))
    assert taken.status_code == fresh.status_code == 202
    assert taken.json() == fresh.json()
    # The request did the same for both: it handed a worker the sign-up to register
    # (which came to one notice each: a code, a manage link).
    assert [h.kind for h in outbox.handed] == [PendingKind.SIGN_UP, PendingKind.NOTICE] * 2
    assert count(db, Subscriber) == 2  # the resident and the fresh sign-up; no third
    last = outbox.notices[-1]
    assert (last.kind, last.address) == (NoticeKind.MANAGE, E164)


def test_channels_choose_which_contact_points_are_wanted(
    client: TestClient, db: sessionmaker[Session]
) -> None:
    assert sign_up(client, ("sms", PHONE), ("email", EMAIL), channels=["email"]).status_code == 202
    assert point_by(db, E164).wanted is False
    assert point_by(db, "jan.kowalski@example.com").wanted is True


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"topics": ["no-such-topic"]}, "topics"),
        ({"districts": ["atlantis"]}, "districts"),
        ({"topics": ["weather\x00"]}, "topics.0"),
        ({"contacts": [{"channel": "sms", "address": "+49 1512 3456789"}]}, "contacts[0].address"),
        ({"contacts": [{"channel": "sms", "address": "22 123 45 67"}]}, "contacts[0].address"),
        ({"contacts": [{"channel": "fax", "address": "1"}]}, "contacts.0.channel"),
        ({"language": "de"}, "language"),
        ({"channels": ["push"]}, "channels"),
        ({"quiet_hours": {"start": "22:00", "end": "22:00"}}, "quiet_hours.end"),
        ({"quiet_hours": {"start": "25:00", "end": "07:00"}}, "quiet_hours.start"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_bad_sign_ups_name_the_field_and_write_nothing(
    client: TestClient,
    outbox: Outbox,
    db: sessionmaker[Session],
    changes: dict[str, Any],
    field: str,
) -> None:
    answer = sign_up(client, ("sms", PHONE), **changes)
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"][0]
    named = detail.get("field") or ".".join(str(part) for part in detail["loc"][1:])
    assert named == field
    assert count(db, Subscriber) == count(db, ContactPoint) == 0
    assert outbox.notices == []


def test_quiet_hours_reach_the_worker_as_given_to_the_second(
    client: TestClient, outbox: Outbox, db: sessionmaker[Session]
) -> None:
    answer = sign_up(client, ("sms", PHONE), quiet_hours={"start": "22:00:10", "end": "22:00:50"})
    assert answer.status_code == 202
    with db() as session:
        subscriber = session.scalars(select(Subscriber)).one()
        assert (str(subscriber.quiet_from), str(subscriber.quiet_until)) == ("22:00:10", "22:00:50")
    assert len(notices_of(outbox, NoticeKind.CODE)) == 1


def test_a_second_region_can_be_allowed(app_settings: Settings, db: sessionmaker[Session]) -> None:
    settings = app_settings.model_copy(update={"sms_allowed_regions": "PL,DE"})
    # The worker that registers it runs with the same settings, as in production.
    outbox = Outbox(db, settings)
    with TestClient(create_app(settings, notify=outbox.notify)) as client:
        assert sign_up(client, ("sms", "+49 1512 3456789")).status_code == 202
    assert point_by(db, "+4915123456789").verified_at is None


# -- new codes and lost links ---------------------------------------------------------


def test_a_lost_link_goes_only_to_a_proven_address_and_the_answer_never_differs(
    client: TestClient, outbox: Outbox, db: sessionmaker[Session], settings: Settings
) -> None:
    with db.begin() as session:
        add_resident(
            session,
            settings,
            contacts=[("sms", PHONE)],
            topics=["weather-warning"],
            districts=["*"],
        )
    sign_up(client, ("email", EMAIL))
    before = len(outbox.notices)
    answers = [
        client.post("/residents/links", json={"channel": c, "address": a})
        for c, a in [("sms", "601 000 700"), ("email", EMAIL), ("sms", "609999999")]
    ]
    assert {a.status_code for a in answers} == {202}
    assert len({a.text for a in answers}) == 1
    # The API did the same for each, known or not: one reminder for a worker to look up,
    # which came to a notice for the proven address only.
    assert [h.kind for h in outbox.handed[-4:]] == [
        PendingKind.REMINDER,
        PendingKind.NOTICE,
        PendingKind.REMINDER,
        PendingKind.REMINDER,
    ]
    sent = outbox.notices[before:]
    assert [(n.kind, n.address) for n in sent] == [(NoticeKind.MANAGE, E164)]
    assert client.get(path_of(sent[0].url)).status_code == 200


def test_a_new_code_goes_to_an_unproven_address(client: TestClient, outbox: Outbox) -> None:
    sign_up(client, ("sms", PHONE))
    answer = client.post("/residents/codes", json={"channel": "sms", "address": PHONE})
    assert answer.status_code == 202
    first, second = notices_of(outbox, NoticeKind.CODE)
    assert second.address == E164
    stale = client.post(
        "/residents/verify", json={"channel": "sms", "address": PHONE, "code": first.code}
    )
    assert stale.status_code == 422 or first.code == second.code
    ok = client.post(
        "/residents/verify", json={"channel": "sms", "address": PHONE, "code": second.code}
    )
    assert ok.status_code == 200


def test_a_malformed_address_is_named(client: TestClient) -> None:
    answer = client.post("/residents/links", json={"channel": "email", "address": "nope"})
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["field"] == "address"


# -- managing through a signed link ---------------------------------------------------


@pytest.fixture
def resident(db: sessionmaker[Session], settings: Settings) -> int:
    with db.begin() as session:
        subscriber = add_resident(
            session,
            settings,
            contacts=[("sms", PHONE), ("email", EMAIL)],
            topics=["weather-warning"],
            districts=["wola"],
        )
        return subscriber.id


def test_manage_reads_and_changes_subscriptions_and_preferences(
    client: TestClient, resident: int
) -> None:
    path = manage_path(resident)
    view = client.get(path).json()
    assert view["subscriptions"] == [{"topic": "weather-warning", "district": "wola"}]
    assert view["language"] == "pl" and view["quiet_hours"] is None

    changed = client.put(
        f"{path}/subscriptions", json={"topics": ["weather-warning"], "districts": ["*"]}
    )
    assert changed.status_code == 200
    assert len(changed.json()["subscriptions"]) == 18

    prefs = client.patch(
        f"{path}/preferences",
        json={
            "language": "en",
            "channels": ["email"],
            "quiet_hours": {"start": "23:00", "end": "06:30"},
        },
    ).json()
    assert prefs["language"] == "en"
    assert prefs["quiet_hours"] == {"start": "23:00:00", "end": "06:30:00"}
    assert {p["channel"]: p["wanted"] for p in prefs["contact_points"]} == {
        "sms": False,
        "email": True,
    }
    # Fields left out stay; null clears quiet hours.
    cleared = client.patch(f"{path}/preferences", json={"quiet_hours": None}).json()
    assert cleared["quiet_hours"] is None and cleared["language"] == "en"

    bad = client.put(f"{path}/subscriptions", json={"topics": ["nope"], "districts": ["wola"]})
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "topics"
    bad = client.patch(f"{path}/preferences", json={"channels": ["push"]})
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "channels"
    assert len(client.get(path).json()["subscriptions"]) == 18


def test_manage_exports_and_erases(
    client: TestClient, resident: int, db: sessionmaker[Session]
) -> None:
    path = manage_path(resident)
    exported = client.get(f"{path}/export")
    assert exported.status_code == 200
    assert {p["address"] for p in exported.json()["contact_points"]} == {
        E164,
        "jan.kowalski@example.com",
    }
    assert client.get(path).status_code == 200
    assert client.delete(path).json() == {"status": "erased"}
    with db() as session:
        assert session.scalar(select(func.count()).select_from(Subscription)) == 0
        assert set(session.scalars(select(ContactPoint.address))) == {None}
    assert client.get(path).status_code == 404
    assert client.delete(path).status_code == 404


def test_forged_and_expired_manage_links_are_refused_distinctly(
    client: TestClient, resident: int
) -> None:
    good = manage_path(resident).rsplit("/", 1)[1]
    other = links.manage_token("another-secret-key-0123456789", resident, int(time.time()) + 60)
    _, expires, signature = good.split(".")
    for token in [other, f"{resident + 1}.{expires}.{signature}", "x", "1.2.3.4", "ąę.1.a"]:
        assert client.get(f"/manage/{token}").status_code == 404, token
        assert client.delete(f"/manage/{token}").status_code == 404, token
    expired = manage_path(resident, lifetime=-1)
    answer = client.get(expired)
    assert answer.status_code == 410 and "ask for a new one" in answer.json()["detail"]
    assert client.delete(expired).status_code == 410
    assert client.get(f"/manage/{good}").status_code == 200


# -- one-click unsubscribe ------------------------------------------------------------


def test_one_click_unsubscribe_only_on_post(
    client: TestClient, resident: int, db: sessionmaker[Session]
) -> None:
    point = point_by(db, "jan.kowalski@example.com")
    path = f"/u/{links.unsubscribe_token(TEST_SECRET, point.id)}"
    page = client.get(path)
    assert page.status_code == 200 and 'name="List-Unsubscribe" value="One-Click"' in page.text
    assert point_by(db, "jan.kowalski@example.com").unsubscribed_at is None

    missing = client.post(path, data={})
    assert missing.status_code == 422
    assert missing.json()["detail"][0]["field"] == "List-Unsubscribe"
    assert point_by(db, "jan.kowalski@example.com").unsubscribed_at is None

    done = client.post(path, data={"List-Unsubscribe": "One-Click"})
    assert done.status_code == 200
    assert point_by(db, "jan.kowalski@example.com").unsubscribed_at is not None
    assert point_by(db, E164).unsubscribed_at is None  # only the linked contact point
    assert client.post(path, data={"List-Unsubscribe": "One-Click"}).status_code == 200


def test_forged_unsubscribe_links_are_refused(
    client: TestClient, resident: int, db: sessionmaker[Session]
) -> None:
    point = point_by(db, E164)
    token = links.unsubscribe_token("another-secret-key-0123456789", point.id)
    for path in (f"/u/{token}", f"/u/{point.id}", "/u/ż.ż"):
        assert client.get(path).status_code == 404
        assert client.post(path, data={"List-Unsubscribe": "One-Click"}).status_code == 404
    assert point_by(db, E164).unsubscribed_at is None


# -- limits on what residents can make us send ----------------------------------------


@pytest.fixture
def limited(app_settings: Settings, outbox: Outbox) -> Iterator[Any]:
    """A client factory with small limits."""
    made: list[TestClient] = []

    def make(**limits: Any) -> TestClient:
        settings = app_settings.model_copy(update=limits)
        client = TestClient(create_app(settings, notify=outbox.notify))
        made.append(client.__enter__())
        return client

    yield make
    for client in made:
        client.__exit__(None, None, None)


def ask(client: TestClient, address: str, **headers: str) -> int:
    answer = client.post(
        "/residents/links", json={"channel": "sms", "address": address}, headers=headers
    )
    if answer.status_code == 429:
        assert int(answer.headers["Retry-After"]) >= 1
    return answer.status_code


def test_limit_per_contact_point(limited: Any) -> None:
    client = limited(verification_codes_per_hour=2)
    assert [ask(client, PHONE) for _ in range(3)] == [202, 202, 429]
    assert ask(client, "+48 601 000 700") == 429  # the same number written otherwise
    assert ask(client, "602000800") == 202


def test_limit_per_client_ip(limited: Any) -> None:
    client = limited(verification_messages_per_ip_per_hour=2)
    assert [ask(client, f"60200080{n}") for n in range(3)] == [202, 202, 429]
    # X-Forwarded-For is the client's own word, not believed without a proxy of ours.
    assert ask(client, "602000809", **{"X-Forwarded-For": "203.0.113.9"}) == 429


def test_limit_per_ip_behind_a_trusted_proxy(limited: Any) -> None:
    client = limited(verification_messages_per_ip_per_hour=1, forwarded_for_hops=1)
    assert ask(client, "602000801", **{"X-Forwarded-For": "203.0.113.1"}) == 202
    assert ask(client, "602000802", **{"X-Forwarded-For": "203.0.113.1"}) == 429
    # Only the entry our proxy appended counts; what the client wrote before it does not.
    spoofed = {"X-Forwarded-For": "198.51.100.7, 203.0.113.1"}
    assert ask(client, "602000803", **spoofed) == 429
    assert ask(client, "602000804", **{"X-Forwarded-For": "203.0.113.2"}) == 202


def test_an_ipv6_client_is_limited_by_its_slash_64(limited: Any) -> None:
    client = limited(verification_messages_per_ip_per_hour=1, forwarded_for_hops=1)
    assert ask(client, "602000801", **{"X-Forwarded-For": "2001:db8:1:2::1"}) == 202
    assert ask(client, "602000802", **{"X-Forwarded-For": "2001:db8:1:2:ffff::9"}) == 429
    assert ask(client, "602000803", **{"X-Forwarded-For": "2001:db8:1:3::1"}) == 202


def test_a_request_that_skipped_our_proxies_is_limited_by_its_peer(limited: Any) -> None:
    # Two proxies of ours would have written two entries; one is the client's own word.
    client = limited(verification_messages_per_ip_per_hour=1, forwarded_for_hops=2)
    assert ask(client, "602000801", **{"X-Forwarded-For": "203.0.113.1"}) == 202
    assert ask(client, "602000802", **{"X-Forwarded-For": "203.0.113.2"}) == 429


def test_one_mailbox_under_many_plus_tags_is_one_contact(limited: Any) -> None:
    client = limited(verification_codes_per_hour=1)
    asked = [
        client.post("/residents/links", json={"channel": "email", "address": address})
        for address in ("jan+1@example.com", "jan+2@example.com", "anna@example.com")
    ]
    assert [answer.status_code for answer in asked] == [202, 429, 202]


def test_global_limit(limited: Any) -> None:
    client = limited(verification_messages_per_hour=2, forwarded_for_hops=1)
    answers = [
        ask(client, f"60200080{n}", **{"X-Forwarded-For": f"203.0.113.{n}"}) for n in range(3)
    ]
    assert answers == [202, 202, 429]


def test_sign_up_is_limited_before_anything_is_written(
    limited: Any, db: sessionmaker[Session], outbox: Outbox
) -> None:
    client = limited(verification_codes_per_hour=1)
    assert sign_up(client, ("sms", PHONE)).status_code == 202
    refused = sign_up(client, ("sms", PHONE))
    assert refused.status_code == 429 and "contacts[0]" in refused.json()["detail"]
    assert count(db, Subscriber) == 1
    assert len(outbox.notices) == 1


def test_limits_are_shared_through_redis_between_api_processes(limited: Any) -> None:
    prefix = f"wsp:test:{uuid.uuid4().hex}"
    shared = {
        "broker_url": REDIS_URL,
        "redis_url": REDIS_URL,
        "ratelimit_key_prefix": prefix,
        "verification_messages_per_ip_per_hour": 2,
    }
    first, second = limited(**shared), limited(**shared)
    try:
        assert ask(first, "602000801") == 202
        assert ask(second, "602000802") == 202
        assert ask(first, "602000803") == 429
        assert ask(second, "602000804") == 429
    finally:
        connection = redis.Redis.from_url(REDIS_URL)
        keys = list(connection.scan_iter(f"{prefix}:*"))
        assert keys
        # Keyed by a keyed hash of the address: Redis does not hold the numbers.
        assert not [key for key in keys if b"60200080" in key]
        connection.delete(*keys)
        connection.close()
