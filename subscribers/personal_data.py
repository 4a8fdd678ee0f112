"""The resident-side halves of export (GDPR art. 15 and 20) and erasure (art. 17): what
this package holds about a resident. The deliveries' halves, and each as a whole, are
`broadcaster.residents.personal_data`'s; the caller owns the transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from broadcaster.audit import trail as audit
from broadcaster.reference.models import District, Topic
from subscribers import pending
from subscribers.models import ContactPoint, Subscriber, Subscription, VerificationCode
from subscribers.services import get_subscriber


def _iso(value: Any) -> Any:
    return value.isoformat() if value is not None else None


def export_subscriber_data(*, session: Session, subscriber_id: int) -> dict[str, Any]:
    """What we hold about one resident here, as JSON-ready data: preferences, contact
    points, subscriptions (their deliveries are added by the export as a whole)."""
    subscriber = get_subscriber(session=session, subscriber_id=subscriber_id)
    topics = dict(session.execute(select(Topic.id, Topic.slug)).all())
    districts = dict(session.execute(select(District.id, District.slug)).all())
    return {
        "subscriber": {
            "id": subscriber.id,
            "language": subscriber.language,
            "quiet_hours": (
                {
                    "start": subscriber.quiet_from.isoformat(),
                    "end": subscriber.quiet_until.isoformat(),
                }
                if subscriber.quiet_from and subscriber.quiet_until
                else None
            ),
            "test_audience": subscriber.test_audience,
            "created_at": _iso(subscriber.created_at),
        },
        "contact_points": [
            {
                "id": point.id,
                "channel": point.channel,
                "address": point.address,
                "wanted": point.wanted,
                "verified_at": _iso(point.verified_at),
                "unsubscribed_at": _iso(point.unsubscribed_at),
                "disabled_at": _iso(point.disabled_at),
                "disabled_reason": point.disabled_reason,
                "created_at": _iso(point.created_at),
            }
            for point in subscriber.contact_points
        ],
        "subscriptions": [
            {"topic": topics[s.topic_id], "district": districts[s.district_id]}
            for s in subscriber.subscriptions
        ],
    }


def erase_subscriber_data(
    *, session: Session, subscriber_id: int, actor: str, now: datetime
) -> list[int]:
    """Remove a resident's personal data held here (GDPR art. 17); returns the ids of
    their contact points, whose deliveries the erasure as a whole deals with.

    Addresses, codes, subscriptions and preferences go; the subscriber and contact point
    rows stay, empty, so that delivery history keeps counting them under their ids alone.
    So does whatever waits for a worker about them: notices to their contact points, and
    sign-ups or reminders that name their addresses (whoever sent those).
    """
    subscriber = get_subscriber(session=session, subscriber_id=subscriber_id)
    point_ids = [point.id for point in subscriber.contact_points]
    pending.forget_contacts(
        session=session,
        contact_point_ids=point_ids,
        contacts=[
            (point.channel, point.address)
            for point in subscriber.contact_points
            if point.address is not None
        ],
    )
    session.execute(
        delete(VerificationCode).where(VerificationCode.contact_point_id.in_(point_ids))
    )
    session.execute(
        update(ContactPoint)
        .where(ContactPoint.id.in_(point_ids))
        .values(address=None, wanted=False, disabled_at=now, disabled_reason="erased")
    )
    session.execute(delete(Subscription).where(Subscription.subscriber_id == subscriber.id))
    session.execute(
        update(Subscriber)
        .where(Subscriber.id == subscriber.id)
        .values(erased_at=now, quiet_from=None, quiet_until=None, test_audience=False)
    )
    session.expire(subscriber)
    audit.record(
        session=session,
        actor=actor,
        action="subscriber.erased",
        object_type="subscriber",
        object_id=subscriber.id,
        payload={"contact_points": len(point_ids)},
    )
    return point_ids
