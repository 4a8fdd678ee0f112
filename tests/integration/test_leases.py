"""Claims whose worker is gone, alerts that end under a batch, and faults between the claim
and the record: every row ends, on both databases.

The sender is the real SMS channel against the SMSAPI sandbox; the clock is moved by the
`now` every step takes.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from broadcaster.alerts import lifecycle
from broadcaster.dispatch import planning, progress, rendering, sending, sweeper
from broadcaster.dispatch.models import Delivery, DispatchBatch
from broadcaster.ratelimit import LocalBucket
from broadcaster.settings import Settings
from channels.interfaces import DeliveryResult, Outcome
from channels.sandbox.server import SMSAPI_TOKEN
from channels.sms import SmsApiChannel, SmsApiConfig
from tests.channels.conftest import Sandbox
from tests.channels.conftest import sandbox as sandbox
from tests.channels.conftest import sandbox_server as sandbox_server
from tests.conftest import Staff
from tests.integration.test_dispatch import approved_alert
from tests.integration.test_dispatch import residents as residents

LEASE = 60.0


def plan_one_batch(db: sessionmaker[Session], settings: Settings, staff: Staff, **changes: object):
    alert_id = approved_alert(db, settings, staff, channels=["sms"], **changes)
    plan = planning.plan_alert(sessions=db, alert_id=alert_id, batch_size=10)
    assert plan is not None
    [batch] = plan.due
    return alert_id, batch.batch_no


def claim(
    db: sessionmaker[Session], settings: Settings, alert_id: int, batch_no: int, now: datetime
) -> sending.Claimed | None:
    with db.begin() as session:
        return sending.claim(
            session=session,
            settings=settings.model_copy(update={"claim_lease_seconds": LEASE}),
            variants=rendering.Variants(),
            alert_id=alert_id,
            batch_no=batch_no,
            now=now,
        )


def statuses(db: sessionmaker[Session], alert_id: int) -> dict[str, int]:
    with db() as session:
        return {
            status.value: n
            for status, n in session.execute(
                select(Delivery.status, func.count())
                .where(Delivery.alert_id == alert_id)
                .group_by(Delivery.status)
            )
        }


def counters(db: sessionmaker[Session], alert_id: int) -> dict[str, int]:
    with db() as session:
        return {s: n for s, n in progress.read(session, alert_id).get("sms", {}).items() if n}


def test_a_run_that_wins_nothing_does_not_extend_a_dead_workers_lease(
    db: sessionmaker[Session], settings: Settings, staff: Staff, residents: None
) -> None:
    alert_id, batch_no = plan_one_batch(db, settings, staff)
    start = datetime.now(UTC)
    assert claim(db, settings, alert_id, batch_no, start) is not None  # then its worker dies
    # The sweeper publishes the batch again and other workers run it, often: each run
    # wins nothing, since every row is held by the dead worker.
    for seconds in (10, 30, LEASE - 1):
        assert claim(db, settings, alert_id, batch_no, start + timedelta(seconds=seconds)) is None
    with db() as session:
        batch = session.get_one(DispatchBatch, (alert_id, batch_no))
        assert batch.claimed_at == start
        # Nothing to run before the lease ends: not published again every sweep meanwhile.
        assert batch.next_run_at >= start + timedelta(seconds=LEASE)
    after = start + timedelta(seconds=LEASE + 1)
    with db.begin() as session:
        found = sweeper.sweep(session=session, lease_seconds=LEASE, now=after)
    assert found.released == 7
    assert [(b.alert_id, b.batch_no) for b in found.batches] == [(alert_id, batch_no)]
    again = claim(db, settings, alert_id, batch_no, after)
    assert again is not None and len(again.messages) == 7
    with db.begin() as session:
        sending.record(
            session=session,
            claimed=again,
            now=after,
            results=[DeliveryResult(m.delivery_id, Outcome.SENT) for m in again.messages],
        )
        assert session.get_one(DispatchBatch, (alert_id, batch_no)).claimed_at is None
    with db.begin() as session:
        assert sweeper.sweep(session=session, lease_seconds=LEASE, now=after).finished == [alert_id]
    assert statuses(db, alert_id) == {"sent": 7} == counters(db, alert_id)


@pytest.mark.parametrize("ending", ["cancel", "expire"])
def test_rows_a_dead_worker_held_for_an_alert_that_ended_are_withdrawn(
    db: sessionmaker[Session], settings: Settings, staff: Staff, residents: None, ending: str
) -> None:
    start = datetime.now(UTC)
    alert_id, batch_no = plan_one_batch(db, settings, staff, expires_at=start + timedelta(hours=1))
    assert claim(db, settings, alert_id, batch_no, start) is not None  # then its worker dies
    if ending == "cancel":
        with db.begin() as session:
            lifecycle.cancel_alert(
                session=session, actor=staff.author, alert_id=alert_id, reason="odwołany"
            )
        after = start + timedelta(seconds=LEASE + 1)
    else:
        after = start + timedelta(hours=1, seconds=1)
    with db.begin() as session:
        found = sweeper.sweep(session=session, lease_seconds=LEASE, now=after)
    assert found.released == 7
    assert found.batches == []  # nothing of an ended alert goes out
    reason = "cancelled" if ending == "cancel" else "expired"
    with db() as session:
        assert set(
            session.execute(
                select(Delivery.status, Delivery.reason).where(Delivery.alert_id == alert_id)
            ).all()
        ) == {("suppressed", reason)}
        assert session.get_one(DispatchBatch, (alert_id, batch_no)).claimed_at is None
    assert counters(db, alert_id) == {"suppressed": 7}


def sms_sender(sandbox: Sandbox, wave: int) -> SmsApiChannel:
    return SmsApiChannel(
        SmsApiConfig(
            token=SMSAPI_TOKEN,
            base_url=sandbox.endpoints.smsapi_url,
            sender="Warszawa",
            batch_size=wave,
        )
    )


def deliver(
    claimed: sending.Claimed, sender: SmsApiChannel, is_live: Callable[[], bool]
) -> list[DeliveryResult]:
    async def run() -> list[DeliveryResult]:
        try:
            return await sending.deliver(
                claimed=claimed,
                sender=sender,
                bucket=LocalBucket(1000, burst=1000),
                is_live=is_live,
                recheck_seconds=0,
            )
        finally:
            await sender.aclose()

    return asyncio.run(run())


def test_a_cancel_holds_back_the_waves_not_yet_sent(
    db: sessionmaker[Session], settings: Settings, staff: Staff, residents: None, sandbox: Sandbox
) -> None:
    alert_id, batch_no = plan_one_batch(db, settings, staff)
    claimed = claim(db, settings, alert_id, batch_no, datetime.now(UTC))
    assert claimed is not None and len(claimed.messages) == 7
    looks = Counter[str]()

    def is_live() -> bool:
        # The operator cancels while the first wave is out; the batch looks before each.
        looks["looked"] += 1
        if looks["looked"] == 2:
            with db.begin() as session:
                lifecycle.cancel_alert(
                    session=session, actor=staff.author, alert_id=alert_id, reason="pomyłka"
                )
        with db() as session:
            return sending.still_live(session=session, alert_id=alert_id)

    results = deliver(claimed, sms_sender(sandbox, wave=3), is_live)
    assert [r.outcome for r in results] == [Outcome.SENT] * 3
    assert len(claimed.withheld) == 4
    assert sandbox.counts("smsapi")["accepted"] == 3
    with db.begin() as session:
        recorded = sending.record(session=session, claimed=claimed, results=results)
    assert (recorded.sent, recorded.withdrawn) == (3, 4)
    assert statuses(db, alert_id) == {"sent": 3, "suppressed": 4} == counters(db, alert_id)


def test_a_channel_that_raises_leaves_no_row_sending(
    db: sessionmaker[Session], settings: Settings, staff: Staff, residents: None, sandbox: Sandbox
) -> None:
    alert_id, batch_no = plan_one_batch(db, settings, staff)
    start = datetime.now(UTC)
    claimed = claim(db, settings, alert_id, batch_no, start)
    assert claimed is not None
    # The second wave's answer is a page no SMSAPI client can read: smsapi-client raises.
    sandbox.faults("smsapi", garbage_rate=1)
    first = deliver(claimed, sms_sender(sandbox, wave=7), lambda: True)
    assert {(r.outcome, r.error_code) for r in first} == {(Outcome.TEMPORARY, "worker-error")}
    with db.begin() as session:
        recorded = sending.record(session=session, claimed=claimed, results=first, now=start)
    assert recorded.retrying == 7
    assert statuses(db, alert_id) == {"pending": 7} == counters(db, alert_id)
    # Once the provider answers properly, the retry sends each message once.
    sandbox.faults("smsapi", garbage_rate=0)
    later = start + timedelta(hours=1)
    again = claim(db, settings, alert_id, batch_no, later)
    assert again is not None and len(again.messages) == 7
    results = deliver(again, sms_sender(sandbox, wave=7), lambda: True)
    with db.begin() as session:
        sending.record(session=session, claimed=again, results=results, now=later)
    assert statuses(db, alert_id) == {"sent": 7}
    counts = sandbox.counts("smsapi")
    assert (counts["accepted"], counts["duplicates"]) == (7, 0)


def test_a_message_the_channel_left_unanswered_waits_and_goes_again(
    db: sessionmaker[Session], settings: Settings, staff: Staff, residents: None
) -> None:
    alert_id, batch_no = plan_one_batch(db, settings, staff)
    claimed = claim(db, settings, alert_id, batch_no, datetime.now(UTC))
    assert claimed is not None
    answered = [DeliveryResult(m.delivery_id, Outcome.SENT) for m in claimed.messages[:5]]
    with db.begin() as session:
        recorded = sending.record(session=session, claimed=claimed, results=answered)
    assert (recorded.sent, recorded.retrying) == (5, 2)
    assert statuses(db, alert_id) == {"sent": 5, "pending": 2} == counters(db, alert_id)
