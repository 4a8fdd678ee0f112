"""The synthetic population: realistic spread, valid addresses, repeatable, re-runnable."""

from collections import Counter

import phonenumbers
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from broadcaster.alerts import services as alerts
from broadcaster.audit import verification
from broadcaster.dev.population import seed_population
from broadcaster.dispatch.audience import count_audience
from broadcaster.reference.services import DISTRICTS
from broadcaster.settings import Settings
from subscribers.contacts import normalise_address
from subscribers.models import ContactPoint, Subscriber, Subscription
from tests.conftest import Staff
from tests.integration.test_lifecycle import weather_draft


def test_population_is_spread_and_valid(db: sessionmaker[Session], engine: Engine) -> None:
    with db.begin() as session:
        report = seed_population(session=session, count=3000, seed=11)
    with db.begin() as session:
        again = seed_population(session=session, count=500, seed=12)
    with db() as session:
        assert session.scalar(select(func.count()).select_from(Subscriber)) == 3500
        assert session.scalar(select(func.count()).select_from(ContactPoint)) == (
            report.contact_points + again.contact_points
        )
        assert session.scalar(select(func.count()).select_from(Subscription)) == (
            report.subscriptions + again.subscriptions
        )
        by_district = Counter(session.scalars(select(Subscription.district_id)))
        assert set(by_district) == {d.id for d in DISTRICTS}
        mokotow, rembertow = by_district[4], by_district[8]
        assert mokotow > 4 * rembertow  # 225k residents against 25k
        languages = Counter(session.scalars(select(Subscriber.language)))
        assert languages["pl"] > 0.85 * 3500
        assert languages["uk"] > 0
        assert languages["en"] > 0
        sample = session.execute(
            select(ContactPoint.channel, ContactPoint.address).limit(400)
        ).all()
        for channel, address in sample:
            assert normalise_address(channel, address) == address
            if channel == "sms":
                assert phonenumbers.is_valid_number(phonenumbers.parse(address))
        assert verification.verify_chain(session=session).intact
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            keys = connection.execute(
                text(
                    "SELECT count(*) FROM pg_constraint WHERE contype = 'f' "
                    "AND conrelid::regclass::text IN ('contact_points', 'subscriptions')"
                )
            ).scalar()
            assert keys == 4  # put back after the load
            next_id = connection.execute(
                text("SELECT nextval(pg_get_serial_sequence('subscribers', 'id'))")
            )
            assert next_id.scalar() == 3501


def test_same_seed_gives_the_same_population(db: sessionmaker[Session], engine: Engine) -> None:
    with db.begin() as session:
        first = seed_population(session=session, count=200, seed=5)
    with db() as session:
        languages = session.scalars(select(Subscriber.language).order_by(Subscriber.id)).all()
        channels = session.scalars(select(ContactPoint.channel).order_by(ContactPoint.id)).all()
    with db.begin() as session:
        second = seed_population(session=session, count=200, seed=5)
    assert first == second
    with db() as session:
        later = session.scalars(
            select(Subscriber.language).where(Subscriber.id > 200).order_by(Subscriber.id)
        ).all()
        later_channels = session.scalars(
            select(ContactPoint.channel)
            .where(ContactPoint.subscriber_id > 200)
            .order_by(ContactPoint.id)
        ).all()
    assert later == languages
    assert later_channels == channels


def test_phone_cohort_adds_exactly_its_size_in_sms_recipients(
    db: sessionmaker[Session], settings: Settings, staff: Staff
) -> None:
    """The benchmark tops the population up to a million SMS recipients of one topic."""
    with db.begin() as session:
        seed_population(session=session, count=300, seed=3)
        alert = alerts.create_alert(
            session=session,
            settings=settings,
            author=staff.author,
            draft=weather_draft(topic="city-services", districts=[], whole_city=True),
        )
        before = count_audience(session=session, alert=alert)
        report = seed_population(session=session, count=250, seed=4, phones_for="city-services")
        after = count_audience(session=session, alert=alert)
    assert (report.subscribers, report.contact_points, report.subscriptions) == (250, 250, 250)
    assert after.get("sms", 0) == before.get("sms", 0) + 250
    assert {k: v for k, v in after.items() if k != "sms"} == {
        k: v for k, v in before.items() if k != "sms"
    }
    with db() as session:
        cohort = session.scalars(select(ContactPoint).where(ContactPoint.subscriber_id > 300)).all()
        assert len(cohort) == 250
        for point in cohort:
            assert normalise_address("sms", point.address) == point.address
            assert phonenumbers.is_valid_number(phonenumbers.parse(point.address))
