"""The residents' service called directly: sign-up tells nothing of who is registered,
a link we do not act on is a domain error, and erasure covers both the resident's data
and their deliveries."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session, sessionmaker

from broadcaster.dispatch.models import Delivery, DeliveryStatus
from broadcaster.errors import BroadcasterError, ExpiredLink, ForgedLink, LinkRefused
from broadcaster.residents.schemas import AddressIn, ContactIn, SubscribeIn
from broadcaster.residents.services import Residents
from broadcaster.settings import Settings
from channels import Channel
from subscribers import links
from subscribers.models import ContactPoint, PendingKind, PendingRequest, Subscriber
from tests.conftest import TEST_SECRET, add_resident
from tests.residents.conftest import Handed

KNOWN = "+48601000700"


def count(db: sessionmaker[Session], model: object) -> int:
    with db() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)  # type: ignore[arg-type]


def a_resident(db: sessionmaker[Session], settings: Settings) -> Subscriber:
    with db.begin() as session:
        resident = add_resident(
            session,
            settings,
            contacts=[("sms", KNOWN), ("email", "jan@example.com")],
            topics=["weather-warning"],
            districts=["wola"],
        )
        session.expunge_all()
    return resident


def manage_token(subscriber_id: int, lifetime: int = 3600) -> str:
    return links.manage_token(TEST_SECRET, subscriber_id, int(time.time()) + lifetime)


def test_sign_up_answers_alike_for_a_known_and_an_unknown_address(
    residents: Residents, handed: Handed, db: sessionmaker[Session], settings: Settings
) -> None:
    a_resident(db, settings)
    before = count(db, Subscriber)

    def sign_up(phone: str) -> object:
        return residents.sign_up(
            request=SubscribeIn(
                contacts=[ContactIn(channel=Channel.SMS, address=phone)],
                topics=["weather-warning"],
                districts=["mokotow"],
            ),
            ip="203.0.113.1",
        )

    answers = [sign_up(KNOWN), sign_up("+48602000800")]
    assert answers == [None, None]
    # The same for both: one sign-up held for a worker, nothing registered yet.
    assert [q.kind for q in handed.queued] == [PendingKind.SIGN_UP] * 2
    assert count(db, Subscriber) == before
    assert count(db, PendingRequest) == 2


def test_a_lost_link_is_asked_for_alike_whoever_holds_the_address(
    residents: Residents, handed: Handed, db: sessionmaker[Session], settings: Settings
) -> None:
    a_resident(db, settings)
    for phone in (KNOWN, "+48602000800"):
        request = AddressIn(channel=Channel.SMS, address=phone)
        assert residents.remind(request=request, ip="203.0.113.1", codes=False) is None
    assert [q.kind for q in handed.queued] == [PendingKind.REMINDER] * 2


@pytest.mark.parametrize(
    ("token", "error"),
    [
        ("x", ForgedLink),
        ("1.2.3.4", ForgedLink),
        (links.manage_token("another-secret-key-0123456789", 1, 2**31 - 1), ForgedLink),
        # Ours, but it ran out in 2001.
        (links.manage_token(TEST_SECRET, 1, 1_000_000_000), ExpiredLink),
    ],
    ids=["garbage", "malformed", "another-key", "expired"],
)
def test_a_manage_link_we_do_not_act_on_is_a_domain_error(
    residents: Residents, db: sessionmaker[Session], token: str, error: type[LinkRefused]
) -> None:
    with pytest.raises(error) as raised:
        residents.manage_view(token=token)
    assert isinstance(raised.value, BroadcasterError)


def test_an_erased_residents_link_no_longer_works(
    residents: Residents, db: sessionmaker[Session], settings: Settings
) -> None:
    resident = a_resident(db, settings)
    token = manage_token(resident.id)
    residents.erase(token=token)
    with pytest.raises(ForgedLink):
        residents.manage_view(token=token)
    with pytest.raises(ForgedLink):
        residents.export(token=token)


def test_confirm_and_unsubscribe_links_refuse_with_domain_errors(
    residents: Residents, db: sessionmaker[Session], settings: Settings
) -> None:
    resident = a_resident(db, settings)
    point_id = resident.contact_points[1].id
    expired = links.confirm_token(TEST_SECRET, point_id, "123456", int(time.time()) - 1)
    with pytest.raises(ExpiredLink):
        residents.check_confirm_link(token=expired)
    with pytest.raises(ExpiredLink):
        residents.confirm_email(token=expired)
    with pytest.raises(ForgedLink):
        residents.confirm_email(token=expired[:-1] + ("0" if expired[-1] != "0" else "1"))
    with pytest.raises(ForgedLink):
        residents.check_unsubscribe_link(token=str(point_id))
    # A link that is ours, for a code a newer one replaced, confirms nothing.
    with db.begin() as session:
        unproven = (
            add_resident(
                session,
                settings,
                contacts=[("email", "anna@example.com")],
                topics=["weather-warning"],
                districts=["wola"],
                verify=False,
            )
            .contact_points[0]
            .id
        )
    replaced = links.confirm_token(TEST_SECRET, unproven, "000000", int(time.time()) + 60)
    with pytest.raises(ExpiredLink):
        residents.confirm_email(token=replaced)


def test_erasure_takes_the_residents_data_and_their_deliveries_alike(
    residents: Residents, db: sessionmaker[Session], settings: Settings
) -> None:
    from tests.integration.test_delivery import an_alert_id

    resident = a_resident(db, settings)
    sms, email = (point.id for point in resident.contact_points)
    with db.begin() as session:
        alert_id = an_alert_id(session, settings)
        session.execute(
            insert(Delivery),
            [
                {
                    "alert_id": alert_id,
                    "subscriber_id": resident.id,
                    "contact_point_id": sms,
                    "channel": "sms",
                    "language": "pl",
                    "status": DeliveryStatus.SENT,
                    "provider_id": "7074294081650000001",
                },
                {
                    "alert_id": alert_id,
                    "subscriber_id": resident.id,
                    "contact_point_id": email,
                    "channel": "email",
                    "language": "pl",
                },
            ],
        )
    residents.erase(token=manage_token(resident.id))
    with db() as session:
        # The resident's side: addresses and subscriptions gone, the rows kept.
        points = session.scalars(select(ContactPoint).order_by(ContactPoint.id)).all()
        assert [(p.address, p.disabled_reason) for p in points] == [(None, "erased")] * 2
        assert session.get_one(Subscriber, resident.id).erased_at is not None
        # The deliveries' side: nothing more leaves, and no provider id links back.
        rows = session.scalars(select(Delivery).order_by(Delivery.id)).all()
        assert [(r.status, r.provider_id, r.reason) for r in rows] == [
            (DeliveryStatus.SENT, None, None),
            (DeliveryStatus.SUPPRESSED, None, "erased"),
        ]
