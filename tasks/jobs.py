"""The tasks: each a thin wrapper that calls into broadcaster and publishes what follows
only after its transaction has committed."""

from __future__ import annotations

import logging
import time
from typing import Any

from celery.signals import worker_process_shutdown
from sqlalchemy.exc import OperationalError

from broadcaster.audit import verification
from broadcaster.db.engine import utcnow
from broadcaster.dispatch import planning, receipts, sending, sweeper
from broadcaster.dispatch.outbox import BatchRef
from broadcaster.errors import InvalidInput
from broadcaster.ratelimit import take
from channels.interfaces import DeliveryResult, Failure, Outcome
from channels.sms import Report
from subscribers import pending
from subscribers.models import PendingKind
from subscribers.notices import Notice, remind, render
from subscribers.notices import sign_up as register
from subscribers.pending import Queued
from tasks.app import NORMAL_PRIORITY, URGENT_PRIORITY, app
from tasks.runtime import Runtime, runtime

_log = logging.getLogger(__name__)

# A code is worth sending for minutes, not hours: retries of a notice stop early.
NOTICE_RETRIES = 5
NOTICE_RETRY_MAX_SECONDS = 60.0


def publish_batches(refs: list[BatchRef]) -> None:
    # One producer for all: acquiring one per message made publishing a million-resident
    # alert's 2,000 batches take 3.1 s instead of 2.2 s (measured here).
    with app.producer_or_acquire() as producer:
        for ref in refs:
            send_batch.apply_async(
                args=[ref.alert_id, ref.batch_no],
                queue=ref.channel,
                priority=URGENT_PRIORITY if ref.urgent else NORMAL_PRIORITY,
                producer=producer,
            )


@app.task(name="tasks.jobs.plan_alert", acks_late=True)
def plan_alert(alert_id: int) -> dict[str, Any]:
    """Plan an approved alert chunk by chunk, publishing each chunk's batches once it has
    committed (or go on with a plan whose planner stopped)."""
    rt = runtime()
    plan = planning.plan_alert(
        sessions=rt.sessions,
        alert_id=alert_id,
        batch_size=rt.settings.batch_size,
        publish=publish_batches,
        lease_seconds=rt.settings.plan_lease_seconds,
    )
    if plan is None:
        return {"alert_id": alert_id, "planned": False}
    if plan.stepped_aside:
        # Behind the urgent alert's plan, which was published at a higher priority (or
        # which the sweeper, taken first, hands on): then this plan goes on.
        plan_alert.apply_async(args=[alert_id], queue="plan", priority=NORMAL_PRIORITY)
    return {
        "alert_id": alert_id,
        "planned": plan.complete,
        "resumed": plan.resumed,
        "batches": plan.batches,
        "chunks": plan.chunks,
        "stepped_aside": plan.stepped_aside,
    }


@app.task(name="tasks.jobs.send_batch", acks_late=True)
def send_batch(alert_id: int, batch_no: int) -> dict[str, Any]:
    """Claim one batch, send it through its channel in waves, record every outcome.

    Whatever fails between the claim and the record (a channel that cannot be built, Redis
    away for the rate limit, a bug) becomes a temporary failure of the messages it left
    unanswered, recorded like any other: no row stays `sending` for it.
    """
    rt = runtime()
    with rt.sessions.begin() as session:
        claimed = sending.claim(
            session=session,
            settings=rt.settings,
            variants=rt.variants,
            alert_id=alert_id,
            batch_no=batch_no,
        )
    if claimed is None:
        return {"alert_id": alert_id, "batch_no": batch_no, "claimed": 0}
    channel = claimed.channel
    results: list[DeliveryResult] = []
    if claimed.messages:

        def is_live() -> bool:
            with rt.sessions() as session:
                return sending.still_live(session=session, alert_id=alert_id)

        try:
            results = rt.run(
                sending.deliver(
                    claimed=claimed,
                    sender=rt.sender(channel),
                    bucket=rt.bucket(channel),
                    is_live=is_live,
                )
            )
        except Exception:
            # Before any wave left (the sender or its bucket could not be had): every
            # message waits and goes again.
            _log.exception(
                "alert %s batch %s: the %s batch could not start", alert_id, batch_no, channel.value
            )
    with rt.sessions.begin() as session:
        recorded = sending.record(
            session=session,
            claimed=claimed,
            results=results,
            retry_base=rt.settings.retry_base_seconds,
            retry_max=rt.settings.retry_max_seconds,
        )
    if recorded.retry_after:
        rt.bucket(channel).pause(recorded.retry_after)
    return {
        "alert_id": alert_id,
        "batch_no": batch_no,
        "sent": recorded.sent,
        "failed": recorded.failed,
        "retrying": recorded.retrying,
        "withdrawn": recorded.withdrawn,
    }


@app.task(name="tasks.jobs.sweep", acks_late=True)
def sweep() -> dict[str, Any]:
    """Beat's heartbeat: plan due alerts, expire, release stale claims, publish batches."""
    rt = runtime()
    busy = frozenset(c for c in ("sms", "push", "email") if rt.queued(c))
    with rt.sessions.begin() as session:
        found = sweeper.sweep(
            session=session,
            lease_seconds=rt.settings.claim_lease_seconds,
            plan_lease_seconds=rt.settings.plan_lease_seconds,
            requeue_seconds=rt.settings.requeue_seconds,
            busy_channels=busy,
        )
    for alert_id in found.plans:
        plan_alert.apply_async(args=[alert_id], queue="plan", priority=URGENT_PRIORITY)
    publish_batches(found.batches)
    return {
        "plans": found.plans,
        "batches": len(found.batches),
        "released": found.released,
        "expired": found.expired,
        "finished": found.finished,
    }


@app.task(name="tasks.jobs.record_smsapi_reports", acks_late=True)
def record_smsapi_reports(reports: list[dict[str, str]]) -> dict[str, int]:
    """SMSAPI delivery reports (plain dicts from the receipt endpoint), applied in bulk."""
    rt = runtime()
    parsed = [Report(r["provider_id"], r["status"], r["idx"]) for r in reports]
    with rt.sessions.begin() as session:
        tally = receipts.apply_smsapi_reports(session=session, reports=parsed)
    return dict(tally)


def deliver_notice(rt: Runtime, notice: Notice) -> DeliveryResult:
    """Send one notice through its channel's sender, within the channel's shared rate."""
    if not rt.run(take(rt.bucket(notice.channel), 1, deadline=10.0)):
        return Failure(temporary=True, code="rate-limited", retry_after=5.0).result(notice.id)
    [result] = rt.run(rt.sender(notice.channel).send_batch([notice.message()]))
    return result


def publish_notices(queued: list[Queued]) -> None:
    for notice in queued:
        send_notice.apply_async(args=[notice.id], queue="notices")


@app.task(name="tasks.jobs.send_notice", acks_late=True, bind=True, max_retries=NOTICE_RETRIES)
def send_notice(self: Any, notice_id: int) -> dict[str, Any]:
    """Send a resident the code or link held under `notice_id`, then forget it.

    The message names the notice only: the address is read from its contact point and a
    link signed now. Temporary failures are retried a few times with backoff (the notice
    stays held meanwhile); a run twice over finds it gone, or sends one SMS (the notice
    id is SMSAPI's idx, checked) and one e-mail Message-ID.
    """
    rt = runtime()
    queued = Queued(PendingKind.NOTICE, notice_id)
    with rt.sessions.begin() as session:
        notice = render(session=session, settings=rt.settings, queued=queued)
        if notice is None:
            # Sent already, or its address was erased or disabled meanwhile.
            pending.forget(session=session, ids=[notice_id])
            return {"notice_id": notice_id, "outcome": None}
    result = deliver_notice(rt, notice)
    if result.outcome is Outcome.TEMPORARY and self.request.retries < NOTICE_RETRIES:
        wait = result.retry_after or 5.0 * 2**self.request.retries
        raise self.retry(countdown=min(wait, NOTICE_RETRY_MAX_SECONDS))
    with rt.sessions.begin() as session:
        pending.forget(session=session, ids=[notice_id])
    return {
        "notice_id": notice_id,
        "kind": notice.kind.value,
        "channel": notice.channel.value,
        "outcome": result.outcome.value,
        "error_code": result.error_code,
    }


@app.task(name="tasks.jobs.send_reminder", acks_late=True)
def send_reminder(request_id: int) -> dict[str, Any]:
    """Look up the address of the reminder held under `request_id` and queue what it
    should get, if anything (a manage link, a fresh code); the API never looked, so that
    its answer tells nothing of who is registered."""
    rt = runtime()
    with rt.sessions.begin() as session:
        notice = remind(
            session=session,
            settings=rt.settings,
            queued=Queued(PendingKind.REMINDER, request_id),
            now=time.time(),
        )
    if notice is None:
        return {"request_id": request_id, "notice": False}
    publish_notices([notice])
    return {"request_id": request_id, "notice": True}


@app.task(
    name="tasks.jobs.sign_up",
    acks_late=True,
    bind=True,
    max_retries=NOTICE_RETRIES,
    # The resident was told it is done: a database that is away for a moment is waited
    # out, not a reason to drop the sign-up.
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    retry_backoff_max=NOTICE_RETRY_MAX_SECONDS,
)
def sign_up(self: Any, request_id: int) -> dict[str, Any]:
    """Register the sign-up the API checked and held under `request_id`, and queue the
    codes (or the manage link of an address already proven) it comes to."""
    rt = runtime()
    queued = Queued(PendingKind.SIGN_UP, request_id)
    try:
        with rt.sessions.begin() as session:
            notices = register(
                session=session, settings=rt.settings, queued=queued, now=time.time()
            )
    except InvalidInput as error:
        if error.field == "contacts" and self.request.retries < NOTICE_RETRIES:
            # Another sign-up wrote the same new address at the same moment: once it has
            # committed, this one finds it unproven and takes it over, as a resident
            # trying again would. The request is still held: taking it rolled back.
            raise self.retry(countdown=1.0) from None
        with rt.sessions.begin() as session:
            pending.forget(session=session, ids=[request_id])
        _log.warning("a sign-up was not registered: %s", error.field)
        return {"request_id": request_id, "notices": 0, "refused": error.field}
    publish_notices(notices)
    return {"request_id": request_id, "notices": len(notices), "refused": None}


@app.task(name="tasks.jobs.forget_stale_requests", acks_late=True)
def forget_stale_requests() -> dict[str, int]:
    """Beat's: drop what was held for a worker that never came (its message lost, its
    retries spent), so that no address or code outlives its use."""
    with runtime().sessions.begin() as session:
        return {"forgotten": pending.forget_stale(session=session, now=utcnow())}


@app.task(name="tasks.jobs.log_audit_checkpoint", acks_late=True)
def log_audit_checkpoint() -> dict[str, Any]:
    """Beat's: verify the audit trail and write a checkpoint of its tip to the log, where
    it lives outside the database (`broadcaster audit verify --checkpoint <the log>`
    reads it). The walk reads every record: at a million records, seconds of reading."""
    with runtime().sessions.begin() as session:
        checkpoint = verification.take_checkpoint(session=session)
    if checkpoint is None:
        _log.error("the audit trail does not verify, so no checkpoint: run `audit verify`")
        return {"seq": None}
    _log.info("audit checkpoint %s", checkpoint.as_line())
    return {"seq": checkpoint.seq}


@worker_process_shutdown.connect
def _close_channels(**_: Any) -> None:
    runtime().close()
