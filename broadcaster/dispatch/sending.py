"""Sending one batch: claim its rows, render each variant once, call the channel once,
record every outcome in bulk.

    claim     one guarded UPDATE (rows pending and due, alert still dispatching) - a task
              the broker delivers twice, or one that runs after a cancel, claims nothing;
              the batch's lease starts with the first claim that won rows, and nothing a
              run that won nothing does moves it
    deliver   the channel's send_batch in waves of what the channel moves at once, each
              inside the channel's shared rate limit, the alert checked again between
              waves (a cancel stops what has not left); an error of ours or the channel's
              becomes a temporary failure of what it left unanswered, never a lost row
    record    sent / failed / back to pending with a retry time, per row, in bulk; dead
              addresses disabled; held-back rows withdrawn; the batch rescheduled or
              done, its lease cleared once no row of it is held

Rows move through the delivery state machine (which moves the counters with them), the
batch row through the outbox; rendering is `rendering`'s.

Temporary failures retry with exponential backoff and full jitter, no sooner than the
provider's Retry-After, until the alert expires; then they fail with the last code.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import case, select, update
from sqlalchemy.orm import Session

from broadcaster.alerts.models import Alert, AlertStatus
from broadcaster.db.engine import utcnow
from broadcaster.dispatch.models import Delivery
from broadcaster.dispatch.outbox import Outbox
from broadcaster.dispatch.planning import is_urgent
from broadcaster.dispatch.profiles import PROFILES
from broadcaster.dispatch.rendering import Variants
from broadcaster.dispatch.states import (
    DeliveryChange,
    DeliveryStateMachine,
    SuppressReason,
    ended_reason,
)
from broadcaster.ratelimit import Bucket, take
from broadcaster.settings import Settings
from channels.interfaces import (
    AddressFault,
    Channel,
    ChannelSender,
    DeliveryResult,
    Failure,
    Message,
    Outcome,
)
from subscribers.links import unsubscribe_url
from subscribers.models import ContactPoint

BACKOFF_BASE = 5.0  # seconds before the first retry, doubled each time, with full jitter
BACKOFF_MAX = 900.0
BOUNCES_TO_DISABLE = 3
# A batch looks at its alert again before a wave once this long has passed since it last
# looked: a cancel stops it within about this and one wave's time, for a query a second.
RECHECK_SECONDS = 0.5
# What a message gets when its wave could not be sent for a fault of ours (a bug, Redis
# away, a channel that raised): it waits and goes again, like any temporary failure.
WORKER_ERROR = Failure(temporary=True, code="worker-error")
RATE_LIMITED = Failure(temporary=True, code="rate-limited", retry_after=5.0)

_log = logging.getLogger(__name__)


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
    # Rows whose variant could not be rendered: fail them unsent.
    unrenderable: list[int] = field(default_factory=list)
    attempts: dict[int, int] = field(default_factory=dict)
    expires_at: datetime | None = None
    lease_seconds: float = 120.0
    # Rows claimed but held back because the alert ended before their wave left.
    withheld: list[int] = field(default_factory=list)


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
    lease = settings.claim_lease_seconds
    rows = DeliveryStateMachine(session).claim_batch(
        alert_id=alert_id, batch_no=batch_no, now=moment
    )
    outbox = Outbox(session)
    outbox.record_run(alert_id=alert_id, batch_no=batch_no, won_rows=bool(rows), now=moment)
    if not rows:
        # Nothing due (a duplicate, or rows that ended or are held meanwhile): settle the
        # batch, its lease left to the claim that holds it.
        outbox.reschedule(alert_id=alert_id, batch_no=batch_no, now=moment, lease_seconds=lease)
        return None
    channel = Channel(rows[0].channel)
    alert = session.get_one(Alert, alert_id)
    urgent = is_urgent(alert)
    claimed = Claimed(
        alert_id=alert_id,
        batch_no=batch_no,
        channel=channel,
        expires_at=alert.expires_at,
        lease_seconds=lease,
    )
    profile = PROFILES[channel]
    linked = profile.unsubscribe_link
    for row in rows:
        claimed.attempts[row.delivery_id] = row.attempts
        if row.address is None:
            claimed.unreachable.append(row.delivery_id)
            continue
        try:
            variant = variants.get(alert, row.language, channel)
        except Exception:
            # A text that cannot be rendered fails its own messages, never the batch.
            _log.exception(
                "alert %s: the %s/%s variant cannot be rendered", alert_id, row.language, channel
            )
            claimed.unrenderable.append(row.delivery_id)
            continue
        link = (
            unsubscribe_url(settings.public_base_url, settings.secret_key, row.contact_point_id)
            if linked
            else ""
        )
        claimed.messages.append(
            profile.message(variant, row.delivery_id, row.address, alert, urgent, link)
        )
    return claimed


def still_live(*, session: Session, alert_id: int) -> bool:
    """Whether the alert still goes out (not cancelled or expired since the claim)."""
    status = session.scalar(select(Alert.status).where(Alert.id == alert_id))
    return status is AlertStatus.DISPATCHING


async def deliver(
    *,
    claimed: Claimed,
    sender: ChannelSender,
    bucket: Bucket,
    is_live: Callable[[], bool],
    recheck_seconds: float = RECHECK_SECONDS,
) -> list[DeliveryResult]:
    """Send the claimed messages in waves of `sender.wave` (what the channel moves at
    once), each wave inside the channel's shared rate limit.

    Before a wave, once `recheck_seconds` have passed since the last look, the alert is
    looked at again (`is_live`, a blocking query, run in a thread): after a cancel or an
    expiry the waves not yet sent are held back (`claimed.withheld`), so nothing leaves
    much later than a wave after the cancel. A wave the rate limit does not admit in time
    waits as a temporary failure. An exception of ours or the channel's fails the messages
    it left unanswered temporarily, logged once; the waves already answered keep their
    results, so nothing sent is sent again.
    """
    messages = claimed.messages
    results: list[DeliveryResult] = []
    size = max(1, sender.wave)
    looked = time.monotonic()
    for start in range(0, len(messages), size):
        wave = messages[start : start + size]
        try:
            if not await take(bucket, len(wave)):
                results.extend(RATE_LIMITED.result(m.delivery_id) for m in messages[start:])
                break
            if time.monotonic() - looked >= recheck_seconds:
                if not await asyncio.to_thread(is_live):
                    claimed.withheld.extend(m.delivery_id for m in messages[start:])
                    break
                looked = time.monotonic()
            results.extend(await sender.send_batch(wave))
        except Exception:
            _log.exception(
                "alert %s batch %s: %s wave failed in the worker",
                claimed.alert_id,
                claimed.batch_no,
                claimed.channel.value,
            )
            answered = {r.delivery_id for r in results}
            results.extend(
                WORKER_ERROR.result(m.delivery_id)
                for m in messages[start:]
                if m.delivery_id not in answered
            )
            break
    return results


@dataclass
class Recorded:
    sent: int = 0
    failed: int = 0
    retrying: int = 0
    withdrawn: int = 0
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
    retries: dict[datetime, list[DeliveryChange]] = {}
    summary = Recorded()
    results = _one_answer_each(claimed, results)
    address_fault = PROFILES[claimed.channel].address_fault
    for result in results:
        if result.outcome is Outcome.SENT:
            sent.append(DeliveryChange(result.delivery_id, provider_id=result.provider_id))
            delivered_ok.append(result.delivery_id)
            continue
        fault = address_fault(result)
        if fault is AddressFault.DEAD:
            disable.append(result.delivery_id)
        if result.outcome is Outcome.PERMANENT:
            failed.append(DeliveryChange(result.delivery_id, error_code=result.error_code))
            if fault is AddressFault.BOUNCED:
                bounced.append(result.delivery_id)
            continue
        attempts = claimed.attempts.get(result.delivery_id, 1)
        delay = retry_delay(attempts, result.retry_after, rng, retry_base, retry_max)
        retry_at = moment + timedelta(seconds=delay)
        if result.retry_after:
            summary.retry_after = max(summary.retry_after or 0.0, result.retry_after)
        if claimed.expires_at is not None and retry_at >= claimed.expires_at:
            failed.append(
                DeliveryChange(result.delivery_id, error_code=f"expired:{result.error_code}"[:64])
            )
            continue
        retries.setdefault(retry_at, []).append(
            DeliveryChange(result.delivery_id, error_code=result.error_code)
        )
    failed.extend(DeliveryChange(i, error_code="no-address") for i in claimed.unreachable)
    failed.extend(DeliveryChange(i, error_code="render-error") for i in claimed.unrenderable)
    # One write of the counters for all of the batch's transitions (one per retry time).
    with machine.counted_once():
        summary.sent = machine.record_sent(sent, now=moment)
        summary.failed = machine.record_permanent_failure(failed, now=moment)
        for retry_at, changes in retries.items():
            summary.retrying += machine.record_temporary_failure(changes, retry_at=retry_at)
        summary.withdrawn = machine.withdraw(
            reason=_why_ended(session, claimed.alert_id),
            alert_id=claimed.alert_id,
            delivery_ids=claimed.withheld,
            now=moment,
        )
    _contact_points(session, claimed, disable, bounced, moment)
    Outbox(session).reschedule(
        alert_id=claimed.alert_id,
        batch_no=claimed.batch_no,
        now=moment,
        lease_seconds=claimed.lease_seconds,
    )
    return summary


def _one_answer_each(claimed: Claimed, results: Iterable[DeliveryResult]) -> list[DeliveryResult]:
    """Exactly one result per message sent: a message the channel left unanswered (it
    must not, but a row must never stay `sending` for it) waits and goes again."""
    held = set(claimed.withheld)
    answers = {r.delivery_id: r for r in results if r.delivery_id not in held}
    missing = [
        m.delivery_id
        for m in claimed.messages
        if m.delivery_id not in answers and m.delivery_id not in held
    ]
    if missing:
        _log.error(
            "alert %s batch %s: %d messages were left without an answer",
            claimed.alert_id,
            claimed.batch_no,
            len(missing),
        )
    return [*answers.values(), *(WORKER_ERROR.result(i) for i in missing)]


def _why_ended(session: Session, alert_id: int) -> SuppressReason:
    return ended_reason(session.scalars(select(Alert.status).where(Alert.id == alert_id)).one())


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
