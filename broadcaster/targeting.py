"""Targeting: who an alert reaches, streamed.

The audience is one query: contact points that are verified, wanted, not unsubscribed,
not disabled, on one of the alert's channels, whose subscriber holds a subscription to the
alert's topic in one of its districts (any district for a whole-city alert). The
subscription test is a semi-join (EXISTS), so a resident subscribed to several of the
targeted districts still yields each contact point once, with no DISTINCT to sort a
million rows. Exercise and test alerts reach only the test audience.

Rows come from a server-side cursor in batches: memory stays flat at any audience size.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import time
from typing import NamedTuple

from sqlalchemy import Connection, Select, exists, func, select
from sqlalchemy.orm import Session

from broadcaster.models import Alert, AlertDistrict, CapStatus
from subscribers.models import ContactPoint, Subscriber, Subscription

DEFAULT_BATCH = 5000
_cursors = itertools.count(1)


class AudienceMember(NamedTuple):
    contact_point_id: int
    subscriber_id: int
    channel: str
    language: str
    quiet_from: time | None
    quiet_until: time | None


def audience_query(alert: Alert) -> Select[int, int, str, str, time | None, time | None]:
    """The SELECT of an alert's audience (also usable inside INSERT ... SELECT)."""
    subscription = select(Subscription.subscriber_id).where(
        Subscription.subscriber_id == ContactPoint.subscriber_id,
        Subscription.topic_id == alert.topic_id,
    )
    if not alert.whole_city:
        subscription = subscription.where(
            Subscription.district_id.in_(
                select(AlertDistrict.district_id).where(AlertDistrict.alert_id == alert.id)
            )
        )
    query = (
        select(
            ContactPoint.id,
            ContactPoint.subscriber_id,
            ContactPoint.channel,
            Subscriber.language,
            Subscriber.quiet_from,
            Subscriber.quiet_until,
        )
        .join(Subscriber, Subscriber.id == ContactPoint.subscriber_id)
        .where(
            ContactPoint.channel.in_(list(alert.channels)),
            ContactPoint.verified_at.is_not(None),
            ContactPoint.wanted.is_(True),
            ContactPoint.unsubscribed_at.is_(None),
            ContactPoint.disabled_at.is_(None),
            ContactPoint.address.is_not(None),
            Subscriber.erased_at.is_(None),
            exists(subscription),
        )
    )
    if alert.cap_status is not CapStatus.ACTUAL:
        query = query.where(Subscriber.test_audience.is_(True))
    return query


def stream_audience(
    *, session: Session, alert: Alert, batch_size: int = DEFAULT_BATCH
) -> Iterator[list[AudienceMember]]:
    """The alert's audience in batches of at most `batch_size`, from a server-side cursor.

    On PostgreSQL the rows come straight from a named psycopg cursor in the session's
    transaction: SQLAlchemy's per-row result processing cost four times the query itself
    for a million rows (5.2 s against 1.3 s, measured here).
    """
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        yield from _stream_postgres(connection, alert, batch_size)
        return
    result = session.execute(
        audience_query(alert).execution_options(stream_results=True, yield_per=batch_size)
    )
    try:
        for partition in result.partitions(batch_size):
            yield [
                AudienceMember(point, subscriber, channel, language, quiet_from, quiet_until)
                for point, subscriber, channel, language, quiet_from, quiet_until in partition
            ]
    finally:
        result.close()  # also when the consumer stops early: free the server-side cursor


def count_audience(*, session: Session, alert: Alert) -> dict[str, int]:
    """How many contact points the alert reaches, per channel."""
    totals: dict[str, int] = {}
    for (channel, _), count in count_audience_by_language(session=session, alert=alert).items():
        totals[channel] = totals.get(channel, 0) + count
    return totals


def count_audience_by_language(*, session: Session, alert: Alert) -> dict[tuple[str, str], int]:
    """How many contact points the alert reaches, per (channel, language)."""
    inner = audience_query(alert).subquery()
    rows = session.execute(
        select(inner.c.channel, inner.c.language, func.count()).group_by(
            inner.c.channel, inner.c.language
        )
    ).all()
    return {(channel, language): count for channel, language, count in rows}


def _stream_postgres(
    connection: Connection, alert: Alert, batch_size: int
) -> Iterator[list[AudienceMember]]:
    statement = audience_query(alert).compile(
        dialect=connection.dialect, compile_kwargs={"literal_binds": True}
    )
    driver = connection.connection.driver_connection
    assert driver is not None
    cursor = driver.cursor(name=f"audience_{alert.id}_{next(_cursors)}")
    cursor.itersize = batch_size
    try:
        cursor.execute(str(statement))
        while rows := cursor.fetchmany(batch_size):
            yield [AudienceMember._make(row) for row in rows]
    finally:
        cursor.close()
