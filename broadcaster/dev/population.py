"""A synthetic, realistic resident population for demos, tests and benchmarks.

Residents are spread over the districts in proportion to their real populations, speak
mostly Polish (some Ukrainian and English), give a phone more often than an e-mail or a
device, subscribe to a few topics (weather warnings most of all) for their home district
and often for a second one, and a few have quiet hours, unverified or unsubscribed
contact points. Every address is synthetic: phones are numbered from the subscriber id,
e-mails are on example.com (RFC 2606), tokens are random.

Written in chunks: COPY on PostgreSQL, executemany on SQLite, one transaction in all, so
a million residents go in well under a minute and an interrupted run leaves nothing.
"""

from __future__ import annotations

import base64
import itertools
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Any, cast

from sqlalchemy import Connection, Table, func, select, text
from sqlalchemy.orm import Session

from broadcaster.audit import trail as audit
from broadcaster.db.bulk import row_writer
from broadcaster.db.engine import utcnow
from broadcaster.reference.services import DISTRICTS, TOPIC_BY_SLUG, seed_reference_data
from subscribers.models import ContactPoint, Subscriber, Subscription

CHUNK = 20_000
PHONE_BASE = 500_000_000  # +48 500 000 000: the 50x mobile blocks, one number per id

LANGUAGES = (("pl", 0.92), ("uk", 0.05), ("en", 0.03))
QUIET_WINDOWS = ((time(22, 0), time(7, 0)), (time(23, 0), time(6, 0)), (time(21, 30), time(6, 30)))
# Chance that a resident follows each topic; weather warnings are the most wanted.
TOPIC_INTEREST = {
    "weather-warning": 0.70,
    "water-outage": 0.25,
    "heating-outage": 0.22,
    "power-outage": 0.25,
    "gas-outage": 0.06,
    "public-transport": 0.30,
    "road-traffic": 0.18,
    "roadworks": 0.10,
    "air-quality": 0.15,
    "public-safety": 0.22,
    "culture-events": 0.15,
    "health": 0.08,
    "city-services": 0.10,
}

SUBSCRIBER_COLUMNS = ("id", "language", "quiet_from", "quiet_until", "test_audience", "created_at")
CONTACT_COLUMNS = (
    "id",
    "subscriber_id",
    "channel",
    "address",
    "wanted",
    "verified_at",
    "unsubscribed_at",
    "created_at",
)
SUBSCRIPTION_COLUMNS = ("subscriber_id", "topic_id", "district_id")


@dataclass
class Chunk:
    subscribers: list[tuple[Any, ...]] = field(default_factory=list)
    contacts: list[tuple[Any, ...]] = field(default_factory=list)
    subscriptions: list[tuple[Any, ...]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class SeedReport:
    subscribers: int
    contact_points: int
    subscriptions: int


def generate(
    *,
    count: int,
    first_subscriber_id: int,
    first_contact_id: int,
    seed: int,
    now: datetime,
    phones_for: int | None = None,
) -> Iterator[Chunk]:
    """Rows for `count` residents, in chunks of CHUNK subscribers. With `phones_for` (a
    topic id), a cohort instead: each resident gives one verified phone, wanted and
    subscribed, and follows that topic alone in their home district."""
    if phones_for is not None:
        yield from _phone_cohort(
            count, first_subscriber_id, first_contact_id, seed, now, phones_for
        )
        return
    rng = random.Random(seed)  # noqa: S311 - synthetic data, repeatable by seed
    district_ids = [d.id for d in DISTRICTS]
    district_weights = list(itertools.accumulate(d.residents for d in DISTRICTS))
    languages = [code for code, _ in LANGUAGES]
    language_weights = [weight for _, weight in LANGUAGES]
    interests = [(TOPIC_BY_SLUG[slug].id, chance) for slug, chance in TOPIC_INTEREST.items()]
    all_districts = [d.id for d in DISTRICTS]
    weather = TOPIC_BY_SLUG["weather-warning"].id
    contact_id = first_contact_id
    chunk = Chunk()
    for subscriber_id in range(first_subscriber_id, first_subscriber_id + count):
        random_value = rng.random
        quiet = rng.choice(QUIET_WINDOWS) if random_value() < 0.2 else (None, None)
        chunk.subscribers.append(
            (
                subscriber_id,
                rng.choices(languages, language_weights)[0],
                quiet[0],
                quiet[1],
                random_value() < 0.002,
                now,
            )
        )

        has_phone, has_email, has_push = (
            random_value() < 0.85,
            random_value() < 0.5,
            random_value() < 0.4,
        )
        if not (has_phone or has_email or has_push):
            has_phone = True
        addresses = []
        if has_phone:
            addresses.append(("sms", f"+48{PHONE_BASE + subscriber_id}"))
        if has_email:
            addresses.append(("email", f"mieszkaniec{subscriber_id}@example.com"))
        if has_push:
            token = base64.urlsafe_b64encode(rng.randbytes(105)).decode()
            addresses.append(("push", f"sandbox{subscriber_id}:{token}"))
        for channel, address in addresses:
            verified = now if random_value() < 0.96 else None
            unsubscribed = now if random_value() < 0.01 else None
            chunk.contacts.append(
                (
                    contact_id,
                    subscriber_id,
                    channel,
                    address,
                    random_value() < 0.97,
                    verified,
                    unsubscribed,
                    now,
                )
            )
            contact_id += 1

        topics = [topic for topic, chance in interests if random_value() < chance] or [weather]
        roll = random_value()
        if roll < 0.015:
            districts = all_districts
        else:
            home = rng.choices(district_ids, cum_weights=district_weights)[0]
            districts = [home]
            if roll < 0.38:
                other = rng.choices(district_ids, cum_weights=district_weights)[0]
                if other != home:
                    districts.append(other)
        chunk.subscriptions.extend(
            (subscriber_id, topic, district) for topic in topics for district in districts
        )
        if len(chunk.subscribers) >= CHUNK:
            yield chunk
            chunk = Chunk()
    if chunk.subscribers:
        yield chunk


def _phone_cohort(
    count: int,
    first_subscriber_id: int,
    first_contact_id: int,
    seed: int,
    now: datetime,
    topic: int,
) -> Iterator[Chunk]:
    rng = random.Random(seed)  # noqa: S311 - synthetic data, repeatable by seed
    district_ids = [d.id for d in DISTRICTS]
    district_weights = list(itertools.accumulate(d.residents for d in DISTRICTS))
    languages = [code for code, _ in LANGUAGES]
    language_weights = [weight for _, weight in LANGUAGES]
    for start in range(0, count, CHUNK):
        ids = range(first_subscriber_id + start, first_subscriber_id + min(count, start + CHUNK))
        chunk = Chunk()
        for subscriber_id, language, home in zip(
            ids,
            rng.choices(languages, language_weights, k=len(ids)),
            rng.choices(district_ids, cum_weights=district_weights, k=len(ids)),
            strict=True,
        ):
            contact_id = first_contact_id + subscriber_id - first_subscriber_id
            chunk.subscribers.append((subscriber_id, language, None, None, False, now))
            chunk.contacts.append(
                (
                    contact_id,
                    subscriber_id,
                    "sms",
                    f"+48{PHONE_BASE + subscriber_id}",
                    True,
                    now,
                    None,
                    now,
                )
            )
            chunk.subscriptions.append((subscriber_id, topic, home))
        yield chunk


def _next_ids(connection: Connection) -> tuple[int, int]:
    next_subscriber = (connection.scalar(select(func.max(Subscriber.id))) or 0) + 1
    next_contact = (connection.scalar(select(func.max(ContactPoint.id))) or 0) + 1
    return next_subscriber, next_contact


def seed_population(
    *,
    session: Session,
    count: int,
    seed: int = 2024,
    progress: Callable[[int], None] | None = None,
    phones_for: str | None = None,
) -> SeedReport:
    """Write `count` synthetic residents in the caller's transaction (reference data is
    seeded first if it is missing); with `phones_for` (a topic's slug), the phone cohort
    of `generate` instead, for a benchmark that needs a given number of SMS recipients."""
    if count < 1:
        raise ValueError("count must be at least 1")
    seed_reference_data(session=session)
    connection = session.connection()
    postgres = connection.dialect.name == "postgresql"
    if postgres:
        # Explicit ids go in by COPY; nobody else may take ids meanwhile.
        connection.execute(text("LOCK TABLE subscribers, contact_points IN EXCLUSIVE MODE"))
        foreign_keys = _drop_foreign_keys(connection, ("contact_points", "subscriptions"))
    first_subscriber, first_contact = _next_ids(connection)
    totals = [0, 0, 0]
    write = {
        model.__tablename__: row_writer(connection, cast(Table, model.__table__), columns)
        for model, columns in (
            (Subscriber, SUBSCRIBER_COLUMNS),
            (ContactPoint, CONTACT_COLUMNS),
            (Subscription, SUBSCRIPTION_COLUMNS),
        )
    }
    for chunk in generate(
        count=count,
        first_subscriber_id=first_subscriber,
        first_contact_id=first_contact,
        seed=seed,
        now=utcnow(),
        phones_for=None if phones_for is None else TOPIC_BY_SLUG[phones_for].id,
    ):
        write["subscribers"](chunk.subscribers)
        write["contact_points"](chunk.contacts)
        write["subscriptions"](chunk.subscriptions)
        totals[0] += len(chunk.subscribers)
        totals[1] += len(chunk.contacts)
        totals[2] += len(chunk.subscriptions)
        if progress is not None:
            progress(len(chunk.subscribers))
    if postgres:
        _restore_foreign_keys(connection, foreign_keys)
        for table in ("subscribers", "contact_points"):
            connection.execute(
                text(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608 - fixed names
                    f"(SELECT max(id) FROM {table}))"
                )
            )
        connection.execute(text("ANALYZE subscribers, contact_points, subscriptions"))
    report = SeedReport(*totals)
    audit.record(
        session=session,
        actor="system:seed-demo",
        action="population.seeded",
        object_type="population",
        object_id=f"{first_subscriber}-{first_subscriber + count - 1}",
        payload={
            "subscribers": report.subscribers,
            "contact_points": report.contact_points,
            "subscriptions": report.subscriptions,
            "seed": seed,
            "phones_for": phones_for,
        },
    )
    return report


def _drop_foreign_keys(
    connection: Connection, tables: tuple[str, ...]
) -> list[tuple[str, str, str]]:
    """Drop the tables' foreign keys for the load, returning how to put them back.

    PostgreSQL checks a foreign key row by row (4.4M subscriptions with three keys: 42 s
    instead of 9 s here); adding the constraint back checks every row in one join. This
    is the bulk-load recipe of PostgreSQL's manual ("Populating a Database"), and it is
    transactional: a failed check rolls the whole load back.
    """
    rows = connection.execute(
        text(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) "
            "FROM pg_constraint WHERE contype = 'f' AND conrelid::regclass::text = ANY(:tables)"
        ),
        {"tables": list(tables)},
    ).all()
    for table, name, _definition in rows:
        connection.execute(text(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"'))
    return [(table, name, definition) for table, name, definition in rows]


def _restore_foreign_keys(connection: Connection, keys: list[tuple[str, str, str]]) -> None:
    for table, name, definition in keys:
        connection.execute(text(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}'))
