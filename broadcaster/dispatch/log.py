"""The delivery log as auditors read it: filtered, paged by key, contact points masked.

The delivery table holds millions of rows, so a page is a keyset read on the primary key
(`id > last seen ORDER BY id LIMIT n`), never an OFFSET that would walk every row before
it, and an export reads the same way batch after batch, each batch in a short transaction
of its own: no connection waits on a slow download and no long snapshot holds back
PostgreSQL's vacuum on the busiest table. Rows come oldest first, so new deliveries land on
later pages and a walk through the pages neither repeats nor loses a row.

What the filters mean:

- time (`created_from` inclusive, `created_to` exclusive) is on the delivery's
  `created_at`, when the planner wrote it. It never changes, so a row cannot drift in or
  out of the window between two pages; a status filter says where the row stands now.
- district: deliveries carry none. A delivery belongs to a district when its alert was
  meant for that district (targeted it, or the whole city) and its resident holds a
  subscription to the alert's topic there: the match that brought the message about.
  Subscriptions are read as they are now (the system keeps no history of them), and an
  erased resident holds none, so their deliveries match no district: where someone
  lived is personal data that erasure removed. Those rows still appear under every
  other filter, with the contact shown as "(erased)".

Nothing here shows an address: each contact point appears as `mask_address` renders it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, exists, select
from sqlalchemy.orm import Session, sessionmaker

from broadcaster.alerts.models import Alert, AlertDistrict, CapStatus
from broadcaster.dispatch.models import Delivery, DeliveryStatus
from broadcaster.errors import InvalidInput
from broadcaster.reference.models import District
from broadcaster.reference.services import resolve_slugs
from channels import Channel
from subscribers.contacts import mask_address
from subscribers.models import ContactPoint, Subscription

MAX_PAGE = 1000
EXPORT_BATCH = 2000


@dataclass(frozen=True, slots=True)
class DeliveryFilter:
    """Which deliveries to read, checked: the district resolved to its id."""

    alert_id: int | None = None
    channel: Channel | None = None
    status: DeliveryStatus | None = None
    district_id: int | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None


@dataclass(frozen=True, slots=True)
class LoggedDelivery:
    """One row of the log, as an auditor may see it."""

    delivery_id: int
    alert_id: int
    cap_status: CapStatus
    channel: str
    contact: str
    language: str
    status: DeliveryStatus
    attempts: int
    error_code: str | None
    reason: str | None
    created_at: datetime
    claimed_at: datetime | None
    sent_at: datetime | None
    finished_at: datetime | None
    next_attempt_at: datetime | None

    @property
    def exercise(self) -> bool:
        """An Exercise or Test alert: it reached only the volunteers of the test audience."""
        return self.cap_status is not CapStatus.ACTUAL


@dataclass(frozen=True, slots=True)
class DeliveryPage:
    rows: list[LoggedDelivery]
    # The id to read after for the next page; None on the last page.
    next_after: int | None


def _utc(value: datetime | None, field: str) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise InvalidInput(field, "needs a UTC offset, such as 2024-06-01T12:00:00+02:00")
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise InvalidInput(field, "is out of range") from None


def build_filter(
    *,
    session: Session,
    alert_id: int | None = None,
    channel: Channel | None = None,
    status: DeliveryStatus | None = None,
    district: str | None = None,
    created_from: datetime | None = None,
    created_to: datetime | None = None,
) -> DeliveryFilter:
    """Check the filters before anything is read; InvalidInput names the one at fault
    (`district`, `from`, `to`)."""
    since = _utc(created_from, "from")
    until = _utc(created_to, "to")
    if since is not None and until is not None and until <= since:
        raise InvalidInput("to", "must be later than from")
    district_id = None
    if district is not None:
        [district_id] = resolve_slugs(
            session=session, model=District, slugs=[district], field="district"
        )
    return DeliveryFilter(alert_id, channel, status, district_id, since, until)


def _in_district(district_id: int) -> Any:
    """The delivery's resident is subscribed, in the district, to the topic of an alert
    that was meant for the district: two primary-key probes per row."""
    targeted = Alert.whole_city.is_(True) | exists(
        select(AlertDistrict.alert_id).where(
            AlertDistrict.alert_id == Alert.id, AlertDistrict.district_id == district_id
        )
    )
    subscribed = exists(
        select(Subscription.subscriber_id).where(
            Subscription.subscriber_id == Delivery.subscriber_id,
            Subscription.topic_id == Alert.topic_id,
            Subscription.district_id == district_id,
        )
    )
    return targeted & subscribed


def _query(chosen: DeliveryFilter, after: int | None, limit: int) -> Select[*tuple[Any, ...]]:
    query = (
        select(
            Delivery.id,
            Delivery.alert_id,
            Alert.cap_status,
            Delivery.channel,
            ContactPoint.address,
            Delivery.language,
            Delivery.status,
            Delivery.attempts,
            Delivery.error_code,
            Delivery.reason,
            Delivery.created_at,
            Delivery.claimed_at,
            Delivery.sent_at,
            Delivery.finished_at,
            Delivery.next_attempt_at,
        )
        .join(Alert, Alert.id == Delivery.alert_id)
        .join(ContactPoint, ContactPoint.id == Delivery.contact_point_id)
        .order_by(Delivery.id)
        .limit(limit)
    )
    if after is not None:
        query = query.where(Delivery.id > after)
    if chosen.alert_id is not None:
        query = query.where(Delivery.alert_id == chosen.alert_id)
    if chosen.channel is not None:
        query = query.where(Delivery.channel == chosen.channel.value)
    if chosen.status is not None:
        query = query.where(Delivery.status == chosen.status)
    if chosen.created_from is not None:
        query = query.where(Delivery.created_at >= chosen.created_from)
    if chosen.created_to is not None:
        query = query.where(Delivery.created_at < chosen.created_to)
    if chosen.district_id is not None:
        query = query.where(_in_district(chosen.district_id))
    return query


def _logged(row: Any) -> LoggedDelivery:
    (delivery_id, alert_id, cap_status, channel, address, *rest) = row
    (language, status, attempts, error_code, reason, *times) = rest
    return LoggedDelivery(
        delivery_id,
        alert_id,
        CapStatus(cap_status),
        channel,
        mask_address(channel, address),
        language,
        DeliveryStatus(status),
        attempts,
        error_code,
        reason,
        *times,
    )


def read_page(
    *, session: Session, chosen: DeliveryFilter, after: int | None, limit: int
) -> DeliveryPage:
    """Up to `limit` deliveries with an id above `after`, in id order."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput("limit", f"must be between 1 and {MAX_PAGE}")
    # One row more than asked tells whether another page follows, without a count.
    rows = [_logged(row) for row in session.execute(_query(chosen, after, limit + 1))]
    if len(rows) > limit:
        return DeliveryPage(rows[:limit], rows[limit - 1].delivery_id)
    return DeliveryPage(rows, None)


def export(
    *, sessions: sessionmaker[Session], chosen: DeliveryFilter, batch_size: int = EXPORT_BATCH
) -> Iterator[LoggedDelivery]:
    """Every matching delivery in id order, read `batch_size` rows per transaction, so
    memory stays flat however many there are."""
    after: int | None = None
    while True:
        with sessions() as session, session.begin():
            batch = [_logged(row) for row in session.execute(_query(chosen, after, batch_size))]
        yield from batch
        if len(batch) < batch_size:
            return
        after = batch[-1].delivery_id


CSV_COLUMNS = (
    "delivery_id",
    "alert_id",
    "exercise",
    "channel",
    "contact",
    "language",
    "status",
    "attempts",
    "error_code",
    "reason",
    "created_at",
    "claimed_at",
    "sent_at",
    "finished_at",
    "next_attempt_at",
)
# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection);
# a leading apostrophe makes it text. Provider error codes are not ours to trust.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    text = str(value)
    return f"'{text}" if text.startswith(_FORMULA_STARTS) else text


def csv_cells(row: LoggedDelivery) -> list[str]:
    """The row's cells in CSV_COLUMNS order, each safe to open in a spreadsheet."""
    return [_cell(getattr(row, column)) for column in CSV_COLUMNS]


def csv_chunks(rows: Iterable[LoggedDelivery], *, chunk_rows: int = 500) -> Iterator[str]:
    """The rows as CSV text (a header first), a chunk of `chunk_rows` lines at a time."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for number, row in enumerate(rows, start=1):
        writer.writerow(csv_cells(row))
        if number % chunk_rows == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()
