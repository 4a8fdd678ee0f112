"""Residents: subscribing, verification codes, preferences, unsubscribe, export, erasure."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from broadcaster.audit import verification
from broadcaster.audit.models import AuditEvent
from broadcaster.dispatch.models import Delivery, DeliveryStatus
from broadcaster.errors import InvalidInput, NotFound
from broadcaster.residents.personal_data import erase_resident, export_resident
from broadcaster.settings import Settings
from subscribers import services
from subscribers.models import ContactPoint, Subscriber, Subscription, VerificationCode
from subscribers.verification import CodeCheck, check_code, issue_code
from tests.conftest import add_resident


def counts(session: Session) -> tuple[int, ...]:
    return tuple(
        session.scalar(select(func.count()).select_from(model)) or 0
        for model in (Subscriber, ContactPoint, Subscription, VerificationCode, AuditEvent)
    )


@pytest.mark.parametrize(
    ("changes", "field", "fragment"),
    [
        ({"contacts": [("sms", "12345")]}, "contacts[0].address", "not a valid phone"),
        ({"contacts": [("sms", "601000001"), ("email", "jan@")]}, "contacts[1].address", "e-mail"),
        ({"contacts": [("fax", "221234567")]}, "contacts[0].channel", "sms, push, email"),
        ({"contacts": []}, "contacts", "at least one"),
        (
            {"contacts": [("sms", "601000001"), ("sms", "+48 601 000 001")]},
            "contacts[1].address",
            "twice",
        ),
        ({"topics": ["weather-warning", "aliens"]}, "topics", "unknown topic 'aliens'"),
        ({"topics": []}, "topics", "must not be empty"),
        ({"districts": ["narnia"]}, "districts", "unknown district 'narnia'"),
        ({"language": "de"}, "language", "pl, en, uk"),
    ],
)
def test_bad_subscriptions_are_refused_whole(
    db: sessionmaker[Session],
    settings: Settings,
    changes: dict[str, object],
    field: str,
    fragment: str,
) -> None:
    request: dict[str, object] = {
        "contacts": [("sms", "601000001")],
        "topics": ["weather-warning"],
        "districts": ["wola"],
        "language": "pl",
    }
    request.update(changes)
    with db() as session:
        before = counts(session)
    with db.begin() as session, pytest.raises(InvalidInput) as caught:
        services.subscribe(session=session, settings=settings, **request)  # type: ignore[arg-type]
    assert caught.value.field == field
    assert fragment in caught.value.message
    with db() as session:
        assert counts(session) == before


def test_an_address_registers_once(db: sessionmaker[Session], settings: Settings) -> None:
    with db.begin() as session:
        add_resident(
            session,
            settings,
            contacts=[("email", "jan@example.com")],
            topics=["health"],
            districts=["wola"],
        )
    with db.begin() as session, pytest.raises(InvalidInput, match="already registered") as caught:
        services.subscribe(
            session=session,
            settings=settings,
            contacts=[("email", "JAN@example.com")],
            topics=["health"],
            districts=["wola"],
        )
    assert caught.value.field == "contacts[0].address"


def test_whole_city_subscription(db: sessionmaker[Session], settings: Settings) -> None:
    with db.begin() as session:
        person = add_resident(
            session,
            settings,
            contacts=[("sms", "601000002")],
            topics=["weather-warning", "air-quality"],
            districts=["*"],
        )
        assert len(person.subscriptions) == 2 * 18


def test_code_verifies_once_and_is_stored_hashed(
    db: sessionmaker[Session], settings: Settings
) -> None:
    with db.begin() as session:
        created = services.subscribe(
            session=session,
            settings=settings,
            contacts=[("sms", "601000003")],
            topics=["health"],
            districts=["wola"],
        )
        point = created.subscriber.contact_points[0]
        code = created.codes[point.id]
        assert len(code) == 6
        assert code.isdigit()
        stored = session.scalars(select(VerificationCode.code_hash)).all()
        assert code not in stored[0]
        assert len(stored[0]) == 64
    with db.begin() as session:
        point = session.get_one(ContactPoint, point.id)
        assert (
            check_code(session=session, settings=settings, contact_point=point, code=code)
            is CodeCheck.VERIFIED
        )
        assert point.verified_at is not None
    with db.begin() as session:
        point = session.get_one(ContactPoint, point.id)
        # Used: the same code does not work twice.
        assert (
            check_code(session=session, settings=settings, contact_point=point, code=code)
            is CodeCheck.NO_CODE
        )


def test_wrong_codes_lock_after_the_limit_even_across_transactions(
    db: sessionmaker[Session], settings: Settings
) -> None:
    with db.begin() as session:
        created = services.subscribe(
            session=session,
            settings=settings,
            contacts=[("sms", "601000004")],
            topics=["health"],
            districts=["wola"],
        )
        point_id = created.subscriber.contact_points[0].id
        code = created.codes[point_id]
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    results = []
    for _ in range(settings.verification_max_attempts):
        with db.begin() as session:  # each try is its own request, and is committed
            point = session.get_one(ContactPoint, point_id)
            results.append(
                check_code(session=session, settings=settings, contact_point=point, code=wrong)
            )
    assert results == [CodeCheck.WRONG] * (settings.verification_max_attempts - 1) + [
        CodeCheck.LOCKED
    ]
    with db.begin() as session:
        point = session.get_one(ContactPoint, point_id)
        # Locked: even the right code is refused now.
        assert (
            check_code(session=session, settings=settings, contact_point=point, code=code)
            is CodeCheck.LOCKED
        )
        assert point.verified_at is None
        # A new code starts afresh.
        fresh = issue_code(session=session, settings=settings, contact_point=point)
        assert (
            check_code(session=session, settings=settings, contact_point=point, code=fresh)
            is CodeCheck.VERIFIED
        )


def test_codes_expire_and_new_codes_retire_old_ones(
    db: sessionmaker[Session], settings: Settings
) -> None:
    with db.begin() as session:
        created = services.subscribe(
            session=session,
            settings=settings,
            contacts=[("sms", "601000005")],
            topics=["health"],
            districts=["wola"],
        )
        point = created.subscriber.contact_points[0]
        first = created.codes[point.id]
        second = issue_code(session=session, settings=settings, contact_point=point)
        if first != second:
            assert (
                check_code(session=session, settings=settings, contact_point=point, code=first)
                is CodeCheck.WRONG
            )
        session.execute(
            update(VerificationCode).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        assert (
            check_code(session=session, settings=settings, contact_point=point, code=second)
            is CodeCheck.EXPIRED
        )
        assert point.verified_at is None


def test_preferences_and_unsubscribe(db: sessionmaker[Session], settings: Settings) -> None:
    with db.begin() as session:
        person = add_resident(
            session,
            settings,
            contacts=[("sms", "601000006"), ("email", "p@example.com")],
            topics=["weather-warning"],
            districts=["wola"],
        )
        services.set_preferences(
            session=session,
            subscriber=person,
            language="uk",
            channels=["email"],
            quiet_hours=services.parse_quiet_hours("22:30", "06:00"),
        )
        assert person.language == "uk"
        assert [p.wanted for p in person.contact_points] == [False, True]
        with pytest.raises(InvalidInput, match="no contact point for push") as caught:
            services.set_preferences(session=session, subscriber=person, channels=["push"])
        assert caught.value.field == "channels"
        with pytest.raises(InvalidInput) as caught:
            services.parse_quiet_hours("25:00", "06:00")
        assert caught.value.field == "quiet_hours.start"
        with pytest.raises(InvalidInput) as caught:
            services.parse_quiet_hours("06:00", "06:00")
        assert caught.value.field == "quiet_hours.end"
        assert (
            services.set_subscriptions(
                session=session,
                subscriber=person,
                topics=["health", "air-quality"],
                districts=["wola", "bemowo"],
            )
            == 4
        )

        point = services.unsubscribe_contact(
            session=session, channel="email", address="P@example.com", via="link"
        )
        assert point is not None
        assert point.unsubscribed_at is not None
        assert (
            services.unsubscribe_contact(
                session=session, channel="email", address="nobody@example.com", via="link"
            )
            is None
        )
        assert (
            services.resubscribe_contact(
                session=session, channel="email", address="p@example.com", via="sms-keyword"
            )
            is point
        )
        assert point.unsubscribed_at is None


def test_export_holds_everything_and_erasure_keeps_pseudonymous_history(
    db: sessionmaker[Session], settings: Settings
) -> None:
    with db.begin() as session:
        person = add_resident(
            session,
            settings,
            contacts=[("sms", "601000007"), ("email", "e@example.com")],
            topics=["weather-warning"],
            districts=["wola"],
        )
        other = add_resident(
            session,
            settings,
            contacts=[("sms", "601000008")],
            topics=["health"],
            districts=["wola"],
        )
        # A past alert reached both (alert rows are not needed for the history itself).
        from tests.integration.test_delivery import an_alert_id

        alert_id = an_alert_id(session, settings)
        session.execute(
            insert(Delivery),
            [
                {
                    "alert_id": alert_id,
                    "subscriber_id": p.subscriber_id,
                    "contact_point_id": p.id,
                    "channel": p.channel,
                    "language": "pl",
                    "status": DeliveryStatus.DELIVERED,
                }
                for p in [*person.contact_points, *other.contact_points]
            ],
        )
        person_id = person.id

    with db.begin() as session:
        exported = export_resident(session=session, subscriber_id=person_id)
    json.dumps(exported)  # JSON-ready as it is
    assert [c["address"] for c in exported["contact_points"]] == ["+48601000007", "e@example.com"]
    assert exported["subscriptions"] == [{"topic": "weather-warning", "district": "wola"}]
    assert len(exported["deliveries"]) == 2
    assert {d["status"] for d in exported["deliveries"]} == {"delivered"}

    with db.begin() as session:
        erase_resident(session=session, subscriber_id=person_id, actor=f"subscriber:{person_id}")
    with db() as session:
        points = session.scalars(
            select(ContactPoint).where(ContactPoint.subscriber_id == person_id)
        ).all()
        assert [p.address for p in points] == [None, None]
        assert (
            session.scalar(
                select(func.count())
                .select_from(Subscription)
                .where(Subscription.subscriber_id == person_id)
            )
            == 0
        )
        assert (
            session.scalar(
                select(func.count())
                .select_from(VerificationCode)
                .where(VerificationCode.contact_point_id.in_([p.id for p in points]))
            )
            == 0
        )
        # History stays, by id only; the other resident is untouched.
        assert session.scalar(select(func.count()).select_from(Delivery)) == 3
        assert session.get_one(ContactPoint, other.contact_points[0].id).address == "+48601000008"
        # Nothing personal was ever in the audit trail, so it is still whole.
        payloads = " ".join(session.scalars(select(AuditEvent.payload)).all())
        assert "601000007" not in payloads
        assert "e@example.com" not in payloads
        assert verification.verify_chain(session=session).intact
        with pytest.raises(NotFound):
            export_resident(session=session, subscriber_id=person_id)
    with db.begin() as session:
        # The address is free again for whoever holds it next.
        add_resident(
            session,
            settings,
            contacts=[("sms", "601000007")],
            topics=["health"],
            districts=["wola"],
        )


def test_racing_guesses_never_exceed_the_limit(
    db: sessionmaker[Session], settings: Settings
) -> None:
    import threading

    with db.begin() as session:
        created = services.subscribe(
            session=session,
            settings=settings,
            contacts=[("sms", "601000020")],
            topics=["health"],
            districts=["wola"],
        )
        point_id = created.subscriber.contact_points[0].id
        code = created.codes[point_id]
    results: list[CodeCheck] = []
    lock = threading.Lock()

    def guess(number: int) -> None:
        wrong = f"{(int(code) + number) % 1_000_000:06d}"
        with db.begin() as session:
            point = session.get_one(ContactPoint, point_id)
            outcome = check_code(
                session=session, settings=settings, contact_point=point, code=wrong
            )
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(1, 13)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with db() as session:
        stored = session.scalars(
            select(VerificationCode).where(VerificationCode.contact_point_id == point_id)
        ).one()
        assert stored.attempts == settings.verification_max_attempts
        assert stored.locked_at is not None
    assert results.count(CodeCheck.WRONG) == settings.verification_max_attempts - 1
    assert results.count(CodeCheck.LOCKED) == 12 - (settings.verification_max_attempts - 1)


def test_codes_per_contact_point_are_capped(db: sessionmaker[Session], settings: Settings) -> None:
    from broadcaster.errors import RateLimited

    with db.begin() as session:
        created = services.subscribe(
            session=session,
            settings=settings,
            contacts=[("sms", "601000021")],
            topics=["health"],
            districts=["wola"],
        )
        point = created.subscriber.contact_points[0]
        for _ in range(settings.verification_codes_per_hour - 1):
            issue_code(session=session, settings=settings, contact_point=point)
        with pytest.raises(RateLimited):
            issue_code(session=session, settings=settings, contact_point=point)


def test_an_unproven_registration_does_not_hold_an_address_hostage(
    db: sessionmaker[Session], settings: Settings
) -> None:
    with db.begin() as session:
        services.subscribe(
            session=session,
            settings=settings,
            contacts=[("sms", "601000022")],
            topics=["health"],
            districts=["wola"],
        )
    with db.begin() as session:
        owner = add_resident(
            session,
            settings,
            contacts=[("sms", "601000022")],
            topics=["health"],
            districts=["bemowo"],
        )
        assert owner.contact_points[0].verified_at is not None
    with db() as session:
        assert (
            session.scalar(
                select(func.count())
                .select_from(ContactPoint)
                .where(ContactPoint.address == "+48601000022")
            )
            == 1
        )


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"contacts": "601000001"}, "contacts"),
        ({"contacts": [("sms",)]}, "contacts[0]"),
        ({"contacts": [("sms", 601000001)]}, "contacts[0].address"),
        ({"topics": "health"}, "topics"),
        ({"districts": "wola"}, "districts"),
    ],
)
def test_malformed_subscriptions_name_the_field(
    db: sessionmaker[Session], settings: Settings, changes: dict[str, object], field: str
) -> None:
    request: dict[str, object] = {
        "contacts": [("sms", "601000001")],
        "topics": ["health"],
        "districts": ["wola"],
    }
    request.update(changes)
    with db.begin() as session, pytest.raises(InvalidInput) as caught:
        services.subscribe(session=session, settings=settings, **request)  # type: ignore[arg-type]
    assert caught.value.field == field


def test_erasure_stops_pending_messages_and_forgets_provider_ids(
    db: sessionmaker[Session], settings: Settings
) -> None:
    from tests.integration.test_delivery import an_alert_id

    with db.begin() as session:
        person = add_resident(
            session,
            settings,
            contacts=[("sms", "601000023"), ("email", "z@example.com")],
            topics=["health"],
            districts=["wola"],
        )
        services.set_preferences(
            session=session,
            subscriber=person,
            quiet_hours=services.parse_quiet_hours("22:00", "06:00"),
        )
        alert_id = an_alert_id(session, settings)
        sms, email = person.contact_points
        session.execute(
            insert(Delivery),
            [
                {
                    "alert_id": alert_id,
                    "subscriber_id": person.id,
                    "contact_point_id": sms.id,
                    "channel": "sms",
                    "language": "pl",
                    "status": DeliveryStatus.DELIVERED,
                    "provider_id": "7074294081650000001",
                },
                {
                    "alert_id": alert_id,
                    "subscriber_id": person.id,
                    "contact_point_id": email.id,
                    "channel": "email",
                    "language": "pl",
                },
            ],
        )
        person_id = person.id
    with db.begin() as session:
        erase_resident(session=session, subscriber_id=person_id, actor="system:test")
    with db() as session:
        rows = session.scalars(
            select(Delivery).where(Delivery.subscriber_id == person_id).order_by(Delivery.id)
        ).all()
        assert [(r.status, r.provider_id, r.reason) for r in rows] == [
            (DeliveryStatus.DELIVERED, None, None),
            (DeliveryStatus.SUPPRESSED, None, "erased"),
        ]
        erased = session.get_one(Subscriber, person_id)
        assert erased.erased_at is not None
        assert (erased.quiet_from, erased.quiet_until, erased.test_audience) == (None, None, False)
