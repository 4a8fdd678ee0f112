"""Who an alert reaches: one delivery per contact point, only those that may be reached."""

from collections import Counter
from datetime import UTC, datetime

import pytest
from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from broadcaster.alerts import services as alerts
from broadcaster.alerts.models import Alert
from broadcaster.dispatch.audience import AudienceMember, count_audience, stream_audience
from broadcaster.dispatch.models import Delivery
from broadcaster.reference.models import Topic
from broadcaster.residents.personal_data import erase_resident
from broadcaster.settings import Settings
from subscribers import services
from subscribers.models import ContactPoint, Subscription
from tests.conftest import Staff, add_resident
from tests.integration.test_lifecycle import weather_draft


def make_alert(session: Session, settings: Settings, staff: Staff, **changes: object) -> Alert:
    return alerts.create_alert(
        session=session, settings=settings, author=staff.author, draft=weather_draft(**changes)
    )


def audience_ids(session: Session, alert: Alert, batch_size: int = 1000) -> list[int]:
    return [
        m.contact_point_id
        for batch in stream_audience(session=session, alert=alert, batch_size=batch_size)
        for m in batch
    ]


def test_overlapping_districts_give_one_delivery_per_contact_point(
    db: sessionmaker[Session], settings: Settings, staff: Staff
) -> None:
    with db.begin() as session:
        both = add_resident(
            session,
            settings,
            contacts=[("sms", "601000001"), ("email", "a@example.com")],
            topics=["weather-warning"],
            districts=["mokotow", "wola", "ochota"],
        )
        alert = make_alert(session, settings, staff, districts=["mokotow", "wola"])
        ids = audience_ids(session, alert)
        assert sorted(ids) == sorted(p.id for p in both.contact_points)
        # Planning writes them: the unique (contact point, alert) key holds.
        session.execute(
            insert(Delivery),
            [
                {
                    "alert_id": alert.id,
                    "subscriber_id": both.id,
                    "contact_point_id": i,
                    "channel": "sms",
                    "language": "pl",
                }
                for i in ids
            ],
        )
        assert count_audience(session=session, alert=alert) == {"sms": 1, "email": 1}


def test_only_reachable_contact_points_are_targeted(
    db: sessionmaker[Session], settings: Settings, staff: Staff
) -> None:
    with db.begin() as session:

        def resident(phone: str, **kw: object) -> ContactPoint:
            person = add_resident(
                session,
                settings,
                contacts=[("sms", phone)],
                topics=kw.pop("topics", ["weather-warning"]),  # type: ignore[arg-type]
                districts=kw.pop("districts", ["wola"]),
                **kw,
            )  # type: ignore[arg-type]
            return person.contact_points[0]

        reached = resident("601000010")
        resident("601000011", verify=False)
        unsubscribed = resident("601000012")
        services.unsubscribe_contact(
            session=session, channel="sms", address="601000012", via="test"
        )
        unwanted = resident("601000013")
        unwanted.wanted = False
        disabled = resident("601000014")
        disabled.disabled_at = datetime.now(UTC)
        erased = resident("601000015")
        erase_resident(session=session, subscriber_id=erased.subscriber_id, actor="system:test")
        resident("601000016", topics=["air-quality"])
        resident("601000017", districts=["ursynow"])
        session.flush()
        alert = make_alert(session, settings, staff, districts=["wola"])
        assert audience_ids(session, alert) == [reached.id]
        assert unsubscribed.unsubscribed_at is not None


def test_channels_of_the_alert_filter_contact_points(
    db: sessionmaker[Session], settings: Settings, staff: Staff
) -> None:
    with db.begin() as session:
        add_resident(
            session,
            settings,
            contacts=[
                ("sms", "601000020"),
                ("email", "b@example.com"),
                ("push", "device-token-" + "a" * 40),
            ],
            topics=["weather-warning"],
            districts=["wola"],
        )
        alert = make_alert(session, settings, staff, districts=["wola"], channels=["push", "email"])
        members = [m for batch in stream_audience(session=session, alert=alert) for m in batch]
        assert sorted(m.channel for m in members) == ["email", "push"]


def test_whole_city_reaches_every_district(
    db: sessionmaker[Session], settings: Settings, staff: Staff
) -> None:
    with db.begin() as session:
        for number, district in enumerate(["bemowo", "wesola", "zoliborz"]):
            add_resident(
                session,
                settings,
                contacts=[("sms", f"60100003{number}")],
                topics=["weather-warning"],
                districts=[district],
            )
        alert = make_alert(session, settings, staff, districts=[], whole_city=True)
        assert len(audience_ids(session, alert)) == 3
        one = make_alert(session, settings, staff, districts=["wesola"])
        assert len(audience_ids(session, one)) == 1


def test_exercises_reach_only_the_test_audience(
    db: sessionmaker[Session], settings: Settings, staff: Staff
) -> None:
    with db.begin() as session:
        add_resident(
            session,
            settings,
            contacts=[("sms", "601000040")],
            topics=["weather-warning"],
            districts=["wola"],
        )
        volunteer = add_resident(
            session,
            settings,
            contacts=[("sms", "601000041")],
            topics=["weather-warning"],
            districts=["wola"],
            test_audience=True,
        )
        drill = make_alert(session, settings, staff, districts=["wola"], cap_status="Exercise")
        assert audience_ids(session, drill) == [volunteer.contact_points[0].id]
        real = make_alert(session, settings, staff, districts=["wola"])
        assert len(audience_ids(session, real)) == 2


def test_audience_streams_in_batches(
    db: sessionmaker[Session], settings: Settings, staff: Staff
) -> None:
    with db.begin() as session:
        from broadcaster.dev.population import seed_population

        seed_population(session=session, count=600, seed=7)
        # Make every synthetic resident reachable for the topic and district under test.
        session.execute(
            update(ContactPoint).values(
                verified_at=datetime.now(UTC), wanted=True, unsubscribed_at=None
            )
        )
        alert = make_alert(session, settings, staff, districts=[], whole_city=True)
        batches = list(stream_audience(session=session, alert=alert, batch_size=100))
        sizes = [len(b) for b in batches]
        assert all(size == 100 for size in sizes[:-1])
        assert 0 < sizes[-1] <= 100
        ids = [m.contact_point_id for b in batches for m in b]
        assert len(ids) == len(set(ids))
        counted = count_audience(session=session, alert=alert)
        assert sum(counted.values()) == len(ids)
        assert Counter(m.channel for b in batches for m in b) == Counter(counted)
        weather = session.scalar(select(Topic.id).where(Topic.slug == "weather-warning"))
        followers = {
            s
            for s, t in session.execute(
                select(Subscription.subscriber_id, Subscription.topic_id)
            ).all()
            if t == weather
        }
        expected = {
            p.id for p in session.scalars(select(ContactPoint)) if p.subscriber_id in followers
        }
        assert set(ids) == expected


@pytest.mark.parametrize("language", ["pl", "uk", "en"])
def test_audience_carries_language_and_quiet_hours(
    db: sessionmaker[Session], settings: Settings, staff: Staff, language: str
) -> None:
    with db.begin() as session:
        person = add_resident(
            session,
            settings,
            contacts=[("email", "q@example.com")],
            topics=["weather-warning"],
            districts=["wola"],
            language=language,
        )
        services.set_preferences(
            session=session,
            subscriber=person,
            quiet_hours=services.parse_quiet_hours("22:00", "07:00"),
        )
        alert = make_alert(session, settings, staff, districts=["wola"])
        [member] = [m for b in stream_audience(session=session, alert=alert) for m in b]
        assert type(member) is AudienceMember
        assert member.language == language
        assert (member.quiet_from.isoformat(), member.quiet_until.isoformat()) == (
            "22:00:00",
            "07:00:00",
        )


def test_the_preview_shows_every_variant_with_sms_parts(
    db: sessionmaker[Session], settings: Settings, staff: Staff
) -> None:
    from broadcaster.alerts.messages import preview_alert

    long_polish = (
        "Ostrzeżenie przed burzami z gradem. Zostań w domu, zabezpiecz balkon, "
        "nie parkuj pod drzewami."
    )
    with db.begin() as session:
        for n, language in enumerate(["pl", "pl", "uk"]):
            add_resident(
                session,
                settings,
                contacts=[("sms", f"60100005{n}"), ("email", f"p{n}@example.com")],
                topics=["weather-warning"],
                districts=["wola"],
                language=language,
            )
        alert = make_alert(
            session,
            settings,
            staff,
            districts=["wola"],
            channels=["sms", "email"],
            contents={"pl": ("Burza", long_polish)},
        )
        preview = preview_alert(session=session, alert=alert, sms_max_parts=settings.sms_max_parts)
        plain = make_alert(
            session,
            settings,
            staff,
            districts=["wola"],
            channels=["sms"],
            contents={"pl": ("Burza", long_polish)},
            transliterate_sms=True,
        )
        transliterated = preview_alert(
            session=session, alert=plain, sms_max_parts=settings.sms_max_parts
        )
    pl_sms = preview["variants"]["pl"]["sms"]
    assert (pl_sms["encoding"], pl_sms["parts"], pl_sms["recipients"]) == ("UCS-2", 2, 2)
    assert pl_sms["characters"] == len(f"Burza: {long_polish}")
    # Ukrainian readers get the Polish text (no translation) under Ukrainian labels.
    assert preview["variants"]["uk"]["sms"]["recipients"] == 1
    assert preview["variants"]["uk"]["email"]["subject"] == "Попередження: Burza"
    assert preview["sms"] == {
        "limit": 3,
        "over_limit": [],
        "recipients": 3,
        "total_parts": 6,
        "transliterated": False,
        "estimated_cost_pln": None,
    }
    assert preview["audience"] == {"sms": 3, "email": 3}
    gsm = transliterated["variants"]["pl"]["sms"]
    assert (gsm["encoding"], gsm["parts"]) == ("GSM-7", 1)
    assert transliterated["sms"]["total_parts"] == 3


def test_a_consumer_may_query_between_batches_and_stop_early(
    db: sessionmaker[Session], settings: Settings, staff: Staff
) -> None:
    import threading

    from sqlalchemy import func, text

    from broadcaster.dev.population import seed_population

    def helpers() -> list[str]:
        return [t.name for t in threading.enumerate() if t.name.startswith("audience_")]

    with db.begin() as session:
        seed_population(session=session, count=400, seed=11)
        session.execute(
            update(ContactPoint).values(
                verified_at=datetime.now(UTC), wanted=True, unsubscribed_at=None
            )
        )
        alert = make_alert(session, settings, staff, districts=[], whole_city=True)
        everyone = audience_ids(session, alert, batch_size=1000)
        assert len(everyone) > 200

        stream = stream_audience(session=session, alert=alert, batch_size=50)
        first = next(stream)
        # The session answers between two batches, and the stream goes on afterwards.
        assert session.scalar(select(func.count()).select_from(ContactPoint)) >= len(everyone)
        second = next(stream)
        stream.close()
        assert helpers() == []
        assert len(first) == len(second) == 50
        assert {m.contact_point_id for m in first + second} <= set(everyone)
        if session.get_bind().dialect.name == "postgresql":
            assert session.scalar(text("SELECT count(*) FROM pg_cursors")) == 0
        # Still usable, and the same audience again.
        assert audience_ids(session, alert, batch_size=70) == everyone
    assert helpers() == []
