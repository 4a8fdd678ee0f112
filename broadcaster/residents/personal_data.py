"""A resident's personal data as a whole: the export (GDPR art. 15 and 20) and the
erasure (art. 17), each composed of the resident's half (`subscribers.personal_data`) and the
deliveries' half (`broadcaster.dispatch`), in the caller's transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from broadcaster.db.engine import utcnow
from broadcaster.dispatch.models import Delivery
from broadcaster.dispatch.states import DeliveryStateMachine, SuppressReason
from subscribers import personal_data as resident_side


def _iso(value: Any) -> Any:
    return value.isoformat() if value is not None else None


def export_resident(*, session: Session, subscriber_id: int) -> dict[str, Any]:
    """Everything we hold about one resident, as JSON-ready data: their preferences,
    contact points and subscriptions, and every delivery to them."""
    data = resident_side.export_subscriber_data(session=session, subscriber_id=subscriber_id)
    point_ids = [point["id"] for point in data["contact_points"]]
    deliveries = (
        session.execute(
            select(
                Delivery.alert_id,
                Delivery.channel,
                Delivery.contact_point_id,
                Delivery.status,
                Delivery.created_at,
                Delivery.sent_at,
                Delivery.finished_at,
            )
            .where(Delivery.contact_point_id.in_(point_ids))
            .order_by(Delivery.created_at)
        ).all()
        if point_ids
        else []
    )
    data["deliveries"] = [
        {
            "alert_id": row.alert_id,
            "channel": row.channel,
            "contact_point_id": row.contact_point_id,
            "status": row.status,
            "created_at": _iso(row.created_at),
            "sent_at": _iso(row.sent_at),
            "finished_at": _iso(row.finished_at),
        }
        for row in deliveries
    ]
    return data


def erase_resident(*, session: Session, subscriber_id: int, actor: str) -> None:
    """Remove a resident's personal data: addresses, codes, subscriptions, preferences
    and what waits for a worker about them (`subscribers.personal_data.erase_subscriber_data`),
    and on the deliveries' side, everything still pending for them (suppressed as
    erased: nothing more leaves for them) and the provider's message ids, which the
    provider could link back to the address. Statuses and times stay for the statistics.
    """
    now = utcnow()
    point_ids = resident_side.erase_subscriber_data(
        session=session, subscriber_id=subscriber_id, actor=actor, now=now
    )
    DeliveryStateMachine(session).suppress(
        reason=SuppressReason.ERASED, contact_point_ids=point_ids, now=now
    )
    if point_ids:
        session.execute(
            update(Delivery)
            .where(Delivery.contact_point_id.in_(point_ids))
            .values(provider_id=None)
        )
