"""Sending one batch: claim its rows, render each variant once, call the channel once,
record every outcome in bulk.

    claim     one guarded UPDATE (rows pending and due, alert still dispatching) - a task
              the broker delivers twice, or one that runs after a cancel, claims nothing
    send      the channel's send_batch, inside the channel's shared rate limit
    record    sent / failed / back to pending with a retry time, per row, in bulk; dead
              addresses disabled; counters moved; the batch rescheduled or done

Temporary failures retry with exponential backoff and full jitter, no sooner than the
provider's Retry-After, until the alert expires; then they fail with the last code.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, func, select, update
from sqlalchemy.orm import Session

from broadcaster import progress
from broadcaster.db import utcnow
from broadcaster.delivery import DeliveryStateMachine, Outcome
from broadcaster.messages import alert_text
from broadcaster.models import Alert, BatchState, Delivery, DeliveryStatus, DispatchBatch
from broadcaster.planning import is_urgent
from broadcaster.settings import Settings
from channels.interfaces import Channel, DeliveryResult, Message
from channels.interfaces import Outcome as Sent
from subscribers.links import unsubscribe_url
from subscribers.models import ContactPoint
from templates.renderer import render_email, render_push, render_sms

D = DeliveryStatus
BACKOFF_BASE = 5.0  # seconds before the first retry, doubled each time, with full jitter
BACKOFF_MAX = 900.0
BOUNCES_TO_DISABLE = 3


def retry_delay(
    attempts: int,
    retry_after: float | None,
    rng: random.Random,
    base: float = BACKOFF_BASE,
    most: float = BACKOFF_MAX,
) -> float:
    """Full-jitter exponential backoff, never sooner than the provider asked."""
    ceiling = min(most, base * 2 ** min(max(attempts - 1, 0), 30))
    return max(rng.uniform(0, ceiling), retry_after or 0.0)


@dataclass
class Claimed:
    alert_id: int
    batch_no: int
    channel: Channel
    messages: list[Message] = field(default_factory=list)
    # Rows claimed whose address is gone (erased since planning): fail them unsent.
    unreachable: list[int] = field(default_factory=list)
    attempts: dict[int, int] = field(default_factory=dict)
    expires_at: datetime | None = None


class Variants:
    """Rendered variants per (alert, language, channel), kept for the worker's life: each
    variant is rendered once however many batches use it."""

    def __init__(self, limit: int = 256) -> None:
        self.cache: dict[tuple[int, str, str], Any] = {}
        self.limit = limit

    def get(self, alert: Alert, language: str, channel: Channel) -> Any:
        key = (alert.id, language, channel.value)
        if key not in self.cache:
            if len(self.cache) >= self.limit:
                self.cache.clear()
            renderers: dict[Channel, Callable[[Any], Any]] = {
                Channel.SMS: render_sms,
                Channel.PUSH: render_push,
                Channel.EMAIL: render_email,
            }
            self.cache[key] = renderers[channel](alert_text(alert, language))
        return self.cache[key]


def _message(
    channel: Channel,
    variant: Any,
    delivery_id: int,
    address: str,
    alert: Alert,
    urgent: bool,
    unsubscribe: str,
) -> Message:
    data = {"alert_id": str(alert.id), "severity": alert.severity.value}
    if channel is Channel.SMS:
        return Message(delivery_id, address, text=variant.text)
    if channel is Channel.PUSH:
        return Message(
            delivery_id,
            address,
            text=variant.body,
            title=variant.title,
            urgent=urgent,
            expires_at=alert.expires_at,
            data=data,
        )
    text, html = variant.for_recipient(unsubscribe)
    return Message(
        delivery_id,
        address,
        text=text,
        title=variant.subject,
        html=html,
        unsubscribe_url=unsubscribe,
        urgent=urgent,
        data=data,
    )


def claim(
    *,
    session: Session,
    settings: Settings,
    variants: Variants,
    alert_id: int,
    batch_no: int,
    now: datetime | None = None,
) -> Claimed | None:
    """Claim the batch's due rows and build their messages; None if nothing was won."""
    moment = now or utcnow()
    rows = DeliveryStateMachine(session).claim_batch(
        alert_id=alert_id, batch_no=batch_no, now=moment
    )
    session.execute(
        update(DispatchBatch)
        .where(DispatchBatch.alert_id == alert_id, DispatchBatch.batch_no == batch_no)
        .values(claimed_at=moment, runs=DispatchBatch.runs + 1)
    )
    if not rows:
        # Nothing due (a duplicate, or rows that ended meanwhile): settle the batch.
        reschedule_batch(session=session, alert_id=alert_id, batch_no=batch_no, now=moment)
        return None
    channel = Channel(rows[0][2])
    progress.add(
        session,
        alert_id,
        Counter(
            {
                (channel.value, D.PENDING.value): -len(rows),
                (channel.value, D.SENDING.value): len(rows),
            }
        ),
    )
    alert = session.get_one(Alert, alert_id)
    urgent = is_urgent(alert)
    claimed = Claimed(
        alert_id=alert_id, batch_no=batch_no, channel=channel, expires_at=alert.expires_at
    )
    # Only e-mail carries a link of its own per recipient (RFC 8058); an HMAC each is
    # not worth paying for the channels that do not use it.
    linked = channel is Channel.EMAIL
    for delivery_id, point, _, language, attempts, address in rows:
        claimed.attempts[delivery_id] = attempts
        if address is None:
            claimed.unreachable.append(delivery_id)
            continue
        variant = variants.get(alert, language, channel)
        link = (
            unsubscribe_url(settings.public_base_url, settings.secret_key, point) if linked else ""
        )
        claimed.messages.append(
            _message(channel, variant, delivery_id, address, alert, urgent, link)
        )
    return claimed


@dataclass
class Recorded:
    sent: int = 0
    failed: int = 0
    retrying: int = 0
    retry_after: float | None = None


def record(
    *,
    session: Session,
    claimed: Claimed,
    results: Iterable[DeliveryResult],
    now: datetime | None = None,
    rng: random.Random | None = None,
    retry_base: float = BACKOFF_BASE,
    retry_max: float = BACKOFF_MAX,
) -> Recorded:
    """Record every outcome of one batch in bulk, in the caller's transaction."""
    moment = now or utcnow()
    rng = rng or random.Random()  # noqa: S311 - jitter, not secrets
    machine = DeliveryStateMachine(session)
    sent, failed, disable, bounced, delivered_ok = [], [], [], [], []
    retries: dict[datetime, list[Outcome]] = {}
    summary = Recorded()
    for result in results:
        if result.outcome is Sent.SENT:
            sent.append(Outcome(result.delivery_id, provider_id=result.provider_id))
            delivered_ok.append(result.delivery_id)
            continue
        if result.disable_address:
            disable.append(result.delivery_id)
        if result.outcome is Sent.PERMANENT:
            failed.append(Outcome(result.delivery_id, error_code=result.error_code))
            if claimed.channel is Channel.EMAIL and (result.error_code or "").startswith("smtp-5"):
                bounced.append(result.delivery_id)
            continue
        attempts = claimed.attempts.get(result.delivery_id, 1)
        delay = retry_delay(attempts, result.retry_after, rng, retry_base, retry_max)
        retry_at = moment + timedelta(seconds=delay)
        if result.retry_after:
            summary.retry_after = max(summary.retry_after or 0.0, result.retry_after)
        if claimed.expires_at is not None and retry_at >= claimed.expires_at:
            failed.append(
                Outcome(result.delivery_id, error_code=f"expired:{result.error_code}"[:64])
            )
            continue
        retries.setdefault(retry_at, []).append(
            Outcome(result.delivery_id, error_code=result.error_code)
        )
    failed.extend(Outcome(i, error_code="no-address") for i in claimed.unreachable)
    summary.sent = machine.record_sent(sent, now=moment)
    summary.failed = machine.record_permanent_failure(failed, now=moment)
    for retry_at, outcomes in retries.items():
        summary.retrying += machine.record_temporary_failure(outcomes, retry_at=retry_at)
    channel = claimed.channel.value
    progress.add(
        session,
        claimed.alert_id,
        Counter(
            {
                (channel, D.SENDING.value): -(summary.sent + summary.failed + summary.retrying),
                (channel, D.SENT.value): summary.sent,
                (channel, D.FAILED.value): summary.failed,
                (channel, D.PENDING.value): summary.retrying,
            }
        ),
    )
    _contact_points(session, claimed, disable, bounced, moment)
    reschedule_batch(
        session=session, alert_id=claimed.alert_id, batch_no=claimed.batch_no, now=moment
    )
    return summary


def reschedule_batch(*, session: Session, alert_id: int, batch_no: int, now: datetime) -> None:
    """The batch runs again when its earliest waiting row is due, or is done when none
    waits: counted over the whole batch, not just the rows this run claimed."""
    waiting, earliest = session.execute(
        select(func.count(), func.min(func.coalesce(Delivery.next_attempt_at, now))).where(
            Delivery.alert_id == alert_id,
            Delivery.batch_no == batch_no,
            Delivery.status.in_([D.PENDING, D.SENDING]),
        )
    ).one()
    batch = update(DispatchBatch).where(
        DispatchBatch.alert_id == alert_id, DispatchBatch.batch_no == batch_no
    )
    if waiting:
        session.execute(batch.values(next_run_at=max(earliest, now), enqueued_at=None))
    else:
        session.execute(batch.values(state=BatchState.DONE))


def _contact_points(
    session: Session,
    claimed: Claimed,
    disable: list[int],
    bounced: list[int],
    now: datetime,
) -> None:
    """Dead tokens and invalid numbers are disabled at once; an e-mail address after
    BOUNCES_TO_DISABLE hard refusals."""
    points = (
        dict(
            session.execute(
                select(Delivery.id, Delivery.contact_point_id).where(
                    Delivery.id.in_(disable + bounced)
                )
            ).all()
        )
        if disable or bounced
        else {}
    )
    if disable:
        session.execute(
            update(ContactPoint)
            .where(
                ContactPoint.id.in_([points[i] for i in disable if i in points]),
                ContactPoint.disabled_at.is_(None),
            )
            .values(disabled_at=now, disabled_reason=f"{claimed.channel.value}-provider-refused")
        )
    if bounced:
        session.execute(
            update(ContactPoint)
            .where(ContactPoint.id.in_([points[i] for i in bounced if i in points]))
            .values(
                bounces=ContactPoint.bounces + 1,
                disabled_at=case(
                    (ContactPoint.bounces + 1 >= BOUNCES_TO_DISABLE, now),
                    else_=ContactPoint.disabled_at,
                ),
                disabled_reason=case(
                    (ContactPoint.bounces + 1 >= BOUNCES_TO_DISABLE, "email-bounces"),
                    else_=ContactPoint.disabled_reason,
                ),
            )
        )
