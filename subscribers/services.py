"""What residents do: subscribe, change preferences, unsubscribe (the resident-side
halves of export and erasure are `subscribers.personal_data`).

Every function validates all of its input before it writes anything, and names the
offending field; the caller owns the transaction.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import time
from typing import Any

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from broadcaster.audit import trail as audit
from broadcaster.db.engine import utcnow
from broadcaster.errors import InvalidInput, NotFound
from broadcaster.reference.models import District, Language, Topic
from broadcaster.reference.services import resolve_slugs
from broadcaster.settings import Settings
from channels import Channel
from subscribers import pending
from subscribers.contacts import normalise_address, parse_channel, require_region
from subscribers.models import ContactPoint, Subscriber, Subscription, VerificationCode
from subscribers.verification import issue_code

ALL_DISTRICTS = "*"


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A daily window of local time in which non-urgent alerts wait."""

    start: time
    end: time


@dataclass(frozen=True, slots=True)
class NewSubscription:
    subscriber: Subscriber
    # Contact point id -> the one-time code to send to it.
    codes: dict[int, str]


def parse_language(value: object, *, field: str = "language") -> Language:
    try:
        return Language(str(value))
    except ValueError:
        choices = ", ".join(language.value for language in Language)
        raise InvalidInput(field, f"must be one of {choices}") from None


def parse_quiet_hours(
    start: object, end: object, *, field: str = "quiet_hours"
) -> QuietHours | None:
    """Both ends as HH:MM, or neither."""
    if start in (None, "") and end in (None, ""):
        return None
    parsed = []
    for name, value in (("start", start), ("end", end)):
        if isinstance(value, time):
            parsed.append(value)
            continue
        try:
            parsed.append(time.fromisoformat(str(value)))
        except ValueError:
            raise InvalidInput(f"{field}.{name}", "must be a time as HH:MM") from None
    if parsed[0] == parsed[1]:
        raise InvalidInput(f"{field}.end", "must differ from the start")
    return QuietHours(parsed[0], parsed[1])


def _subscription_pairs(
    *, session: Session, topics: Iterable[str], districts: Iterable[str]
) -> list[tuple[int, int]]:
    for field_name, value in (("topics", topics), ("districts", districts)):
        if isinstance(value, str) or not all(isinstance(item, str) for item in value):
            raise InvalidInput(field_name, "must be a list of names")
    topic_ids = resolve_slugs(session=session, model=Topic, slugs=topics, field="topics")
    district_slugs = list(districts)
    if district_slugs == [ALL_DISTRICTS]:
        district_ids = list(session.scalars(select(District.id).order_by(District.id)))
    else:
        district_ids = resolve_slugs(
            session=session, model=District, slugs=district_slugs, field="districts"
        )
    return [(topic, district) for topic in topic_ids for district in district_ids]


def normalise_contacts(
    contacts: Sequence[tuple[str, str]], *, sms_regions: Collection[str]
) -> list[tuple[Channel, str]]:
    """(channel, address) pairs in normal form, phones only from `sms_regions`; the field
    of the first bad one is named."""
    if isinstance(contacts, str) or not isinstance(contacts, list | tuple) or not contacts:
        raise InvalidInput("contacts", "must name at least one phone, e-mail or device")
    normalised: list[tuple[Channel, str]] = []
    for index, pair in enumerate(contacts):
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise InvalidInput(f"contacts[{index}]", "must be a channel and an address")
        channel, raw = pair
        kind = parse_channel(channel, field=f"contacts[{index}].channel")
        field = f"contacts[{index}].address"
        address = normalise_address(kind, raw, field=field)
        if kind is Channel.SMS:
            require_region(address, sms_regions, field=field)
        if (kind, address) in normalised:
            raise InvalidInput(field, "is given twice")
        normalised.append((kind, address))
    return normalised


def check_subscriptions(
    *, session: Session, topics: Iterable[str], districts: Iterable[str]
) -> int:
    """Validate topics x districts without writing; returns how many pairs they make."""
    return len(_subscription_pairs(session=session, topics=topics, districts=districts))


def find_contacts(
    *, session: Session, contacts: Sequence[tuple[Channel, str]]
) -> dict[tuple[Channel, str], ContactPoint]:
    """The registered contact points among normalised `contacts`, in one query."""
    if not contacts:
        return {}
    found = session.scalars(
        select(ContactPoint).where(
            or_(
                *(
                    and_(ContactPoint.channel == kind, ContactPoint.address == address)
                    for kind, address in contacts
                )
            )
        )
    )
    return {(Channel(point.channel), str(point.address)): point for point in found}


def subscribe(
    *,
    session: Session,
    settings: Settings,
    contacts: Sequence[tuple[str, str]],
    topics: Iterable[str],
    districts: Iterable[str],
    language: str = "pl",
    quiet_hours: QuietHours | None = None,
    test_audience: bool = False,
) -> NewSubscription:
    """Register a resident with unverified contact points and return a code for each.

    `contacts` holds (channel, address) pairs; `districts` may be ["*"] for the whole city.
    """
    lang = parse_language(language)
    normalised = normalise_contacts(contacts, sms_regions=settings.sms_regions)
    pairs = _subscription_pairs(session=session, topics=topics, districts=districts)
    stale: list[ContactPoint] = []
    for index, (kind, address) in enumerate(normalised):
        taken = session.scalar(
            select(ContactPoint).where(
                ContactPoint.channel == kind, ContactPoint.address == address
            )
        )
        if taken is None:
            continue
        if taken.verified_at is not None:
            raise InvalidInput(
                f"contacts[{index}].address",
                "is already registered; use the manage link sent to it",
            )
        # Never proven: whoever proves it now takes it, so nobody can hold another
        # person's number hostage by registering it first.
        stale.append(taken)
    if stale:
        # Its codes, and the notices that would carry them, go with it.
        pending.forget_contacts(
            session=session, contact_point_ids=[point.id for point in stale], contacts=()
        )
    for point in stale:
        session.execute(
            delete(VerificationCode).where(VerificationCode.contact_point_id == point.id)
        )
        session.delete(point)
    session.flush()

    subscriber = Subscriber(
        language=lang,
        quiet_from=quiet_hours.start if quiet_hours else None,
        quiet_until=quiet_hours.end if quiet_hours else None,
        test_audience=test_audience,
    )
    subscriber.contact_points = [
        ContactPoint(channel=kind, address=address) for kind, address in normalised
    ]
    subscriber.subscriptions = [Subscription(topic_id=t, district_id=d) for t, d in pairs]
    session.add(subscriber)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        # Somebody registered one of these addresses between our check and our insert.
        raise InvalidInput(
            "contacts", "an address was registered at the same moment; try again"
        ) from None
    audit.record(
        session=session,
        actor=f"subscriber:{subscriber.id}",
        action="subscriber.created",
        object_type="subscriber",
        object_id=subscriber.id,
        payload={
            "channels": [kind.value for kind, _ in normalised],
            "subscriptions": len(pairs),
            "language": lang.value,
        },
    )
    codes = {
        point.id: issue_code(session=session, settings=settings, contact_point=point)
        for point in subscriber.contact_points
    }
    return NewSubscription(subscriber=subscriber, codes=codes)


def get_subscriber(*, session: Session, subscriber_id: int) -> Subscriber:
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None or subscriber.erased_at is not None:
        raise NotFound("subscriber", subscriber_id)
    return subscriber


def set_subscriptions(
    *, session: Session, subscriber: Subscriber, topics: Iterable[str], districts: Iterable[str]
) -> int:
    """Replace the subscriber's topics x districts; returns how many pairs they now hold."""
    pairs = _subscription_pairs(session=session, topics=topics, districts=districts)
    subscriber.subscriptions = [Subscription(topic_id=t, district_id=d) for t, d in pairs]
    session.flush()
    audit.record(
        session=session,
        actor=f"subscriber:{subscriber.id}",
        action="subscriber.subscriptions_set",
        object_type="subscriber",
        object_id=subscriber.id,
        payload={"subscriptions": len(pairs)},
    )
    return len(pairs)


def set_preferences(
    *,
    session: Session,
    subscriber: Subscriber,
    language: str | None = None,
    channels: Iterable[str] | None = None,
    quiet_hours: QuietHours | bool | None = False,
) -> None:
    """Change language, the channels wanted, or quiet hours (None clears them; False keeps).

    A channel is wanted or not per contact point: a phone stays registered (and answers
    STOP/START) while the resident does not want SMS.
    """
    changes: dict[str, Any] = {}
    lang = parse_language(language) if language is not None else None
    wanted: set[Channel] | None = None
    if channels is not None:
        wanted = {parse_channel(c, field="channels") for c in channels}
        if not wanted:
            raise InvalidInput("channels", "must keep at least one channel (or unsubscribe)")
        held = {Channel(point.channel) for point in subscriber.contact_points if point.address}
        missing = wanted - held
        if missing:
            raise InvalidInput("channels", f"no contact point for {sorted(missing)[0]}")
    if lang is not None:
        subscriber.language = lang
        changes["language"] = lang.value
    if wanted is not None:
        for point in subscriber.contact_points:
            point.wanted = Channel(point.channel) in wanted
        changes["channels"] = sorted(wanted)
    if quiet_hours is not False:
        hours = quiet_hours if isinstance(quiet_hours, QuietHours) else None
        subscriber.quiet_from = hours.start if hours else None
        subscriber.quiet_until = hours.end if hours else None
        changes["quiet_hours"] = [hours.start.isoformat(), hours.end.isoformat()] if hours else None
    session.flush()
    audit.record(
        session=session,
        actor=f"subscriber:{subscriber.id}",
        action="subscriber.preferences_set",
        object_type="subscriber",
        object_id=subscriber.id,
        payload=changes,
    )


def find_contact(*, session: Session, channel: str, address: str) -> ContactPoint | None:
    """The contact point registered for an address in any form; None if there is none."""
    kind = parse_channel(channel)
    normal = normalise_address(kind, address)
    return session.scalar(
        select(ContactPoint).where(ContactPoint.channel == kind, ContactPoint.address == normal)
    )


def unsubscribe_contact(
    *, session: Session, channel: str, address: str, via: str
) -> ContactPoint | None:
    """Stop every alert to one contact point (an unsubscribe link, an SMS STOP, ...).

    Returns the contact point, or None when the address is not registered: the caller
    answers the same either way, so nobody learns who is subscribed.
    """
    point = find_contact(session=session, channel=channel, address=address)
    if point is None:
        return None
    if point.unsubscribed_at is None:
        point.unsubscribed_at = utcnow()
        session.flush()
        audit.record(
            session=session,
            actor=f"subscriber:{point.subscriber_id}",
            action="contact.unsubscribed",
            object_type="contact_point",
            object_id=point.id,
            payload={"channel": point.channel, "via": via},
        )
    return point


def resubscribe_contact(
    *, session: Session, channel: str, address: str, via: str
) -> ContactPoint | None:
    """Undo an unsubscribe (an SMS START); only a contact point proven before comes back."""
    point = find_contact(session=session, channel=channel, address=address)
    if point is None or point.verified_at is None:
        return None
    if point.unsubscribed_at is not None:
        point.unsubscribed_at = None
        session.flush()
        audit.record(
            session=session,
            actor=f"subscriber:{point.subscriber_id}",
            action="contact.resubscribed",
            object_type="contact_point",
            object_id=point.id,
            payload={"channel": point.channel, "via": via},
        )
    return point
