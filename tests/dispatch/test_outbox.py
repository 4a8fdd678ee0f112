"""The outbox against both databases: the one owner of every batch row's change."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from broadcaster.dispatch import planning
from broadcaster.dispatch.models import BatchState, Delivery, DispatchBatch
from broadcaster.dispatch.outbox import BatchRef, Outbox
from broadcaster.dispatch.states import DeliveryChange, DeliveryStateMachine
from broadcaster.settings import Settings
from tests.conftest import Staff
from tests.integration.test_dispatch import approved_alert
from tests.integration.test_dispatch import residents as residents

LEASE = 60.0


def planned(db: sessionmaker[Session], settings: Settings, staff: Staff, **changes: object) -> int:
    alert_id = approved_alert(db, settings, staff, **changes)
    assert planning.plan_alert(sessions=db, alert_id=alert_id, batch_size=3) is not None
    return alert_id


def batch(session: Session, alert_id: int, batch_no: int) -> DispatchBatch:
    row = session.get_one(DispatchBatch, (alert_id, batch_no))
    session.refresh(row)
    return row


def test_due_batches_are_published_once_until_their_queue_drains(
    db: sessionmaker[Session], settings: Settings, staff: Staff, residents: None
) -> None:
    alert_id = planned(db, settings, staff)  # Severe: urgent
    now = datetime.now(UTC)
    with db.begin() as session:
        outbox = Outbox(session)
        due = outbox.due(now=now, requeue_seconds=30)
        assert {(ref.channel, ref.urgent) for ref in due} == {("sms", True), ("email", True)}
        assert len(due) == len(session.scalars(select(DispatchBatch.batch_no)).all()) == 6
        outbox.mark_enqueued(refs=due, now=now)
        assert outbox.due(now=now + timedelta(seconds=10), requeue_seconds=30) == []
        later = now + timedelta(minutes=5)
        # Published a while ago: again, but only on channels whose queue has drained.
        again = outbox.due(now=later, requeue_seconds=30, busy_channels=frozenset({"sms"}))
        assert {ref.channel for ref in again} == {"email"}
        assert len(outbox.due(now=later, requeue_seconds=30, limit=2)) == 2
        outbox.close(alert_ids=[alert_id])
        assert outbox.due(now=later, requeue_seconds=30) == []
        states = set(session.scalars(select(DispatchBatch.state)))
        assert states == {BatchState.DONE}


def test_a_run_counts_and_its_lease_is_the_oldest_claim_it_won(
    db: sessionmaker[Session], settings: Settings, staff: Staff, residents: None
) -> None:
    alert_id = planned(db, settings, staff, channels=["sms"])
    start = datetime.now(UTC)
    with db.begin() as session:
        outbox = Outbox(session)
        outbox.record_run(alert_id=alert_id, batch_no=1, won_rows=False, now=start)
        row = batch(session, alert_id, 1)
        assert (row.runs, row.claimed_at) == (1, None)
        outbox.record_run(alert_id=alert_id, batch_no=1, won_rows=True, now=start)
        outbox.record_run(
            alert_id=alert_id, batch_no=1, won_rows=True, now=start + timedelta(seconds=5)
        )
        row = batch(session, alert_id, 1)
        assert (row.runs, row.claimed_at) == (3, start)


def test_a_batch_is_rescheduled_from_its_rows(
    db: sessionmaker[Session], settings: Settings, staff: Staff, residents: None
) -> None:
    alert_id = planned(db, settings, staff, channels=["sms"])
    start = datetime.now(UTC)
    retry_at = start + timedelta(minutes=2)
    with db.begin() as session:
        machine, outbox = DeliveryStateMachine(session), Outbox(session)
        rows = machine.claim_batch(alert_id=alert_id, batch_no=1, now=start)
        first, second, third = (row.delivery_id for row in rows)
        outbox.record_run(alert_id=alert_id, batch_no=1, won_rows=True, now=start)
        machine.record_sent([DeliveryChange(first)])
        machine.record_temporary_failure([DeliveryChange(second)], retry_at=retry_at)
        # One row still waits (for its retry time), one is held by a worker.
        outbox.reschedule(alert_id=alert_id, batch_no=1, now=start, lease_seconds=LEASE)
        row = batch(session, alert_id, 1)
        assert (row.state, row.next_run_at, row.enqueued_at) == (BatchState.QUEUED, retry_at, None)
        assert row.claimed_at == start
        # Only a held row: the batch runs again when its lease ends.
        machine.claim([second], now=retry_at)
        machine.record_permanent_failure([DeliveryChange(second, error_code="x")])
        outbox.reschedule(alert_id=alert_id, batch_no=1, now=start, lease_seconds=LEASE)
        row = batch(session, alert_id, 1)
        assert row.next_run_at == start + timedelta(seconds=LEASE)
        # Nothing waits or is held: done, and its lease cleared.
        machine.record_sent([DeliveryChange(third)])
        outbox.reschedule(alert_id=alert_id, batch_no=1, now=start, lease_seconds=LEASE)
        row = batch(session, alert_id, 1)
        assert (row.state, row.claimed_at) == (BatchState.DONE, None)


def test_a_lapsed_lease_follows_the_rows_still_held(
    db: sessionmaker[Session], settings: Settings, staff: Staff, residents: None
) -> None:
    alert_id = planned(db, settings, staff, channels=["sms"])
    start = datetime.now(UTC)
    after = start + timedelta(seconds=LEASE + 1)
    with db.begin() as session:
        machine, outbox = DeliveryStateMachine(session), Outbox(session)
        machine.claim_batch(alert_id=alert_id, batch_no=1, now=start)
        outbox.record_run(alert_id=alert_id, batch_no=1, won_rows=True, now=start)
        outbox.mark_enqueued(refs=[BatchRef(alert_id, 1, "sms", True)], now=start)
        assert outbox.lapsed_leases(claimed_before=start) == []
        [lapsed] = outbox.lapsed_leases(claimed_before=after)
        assert (lapsed.alert_id, lapsed.batch_no, lapsed.alert_status.value) == (
            alert_id,
            1,
            "dispatching",
        )
        assert machine.release_stale(alert_id=alert_id, batch_no=1, claimed_before=after) == 3
        outbox.lease_lapsed(alert_id=alert_id, batch_no=1, released=True, now=after)
        row = batch(session, alert_id, 1)
        assert (row.claimed_at, row.enqueued_at, row.next_run_at) == (None, None, after)
        assert outbox.lapsed_leases(claimed_before=after) == []
        pending = session.scalars(select(Delivery.status).where(Delivery.batch_no == 1)).all()
        assert {status.value for status in pending} == {"pending"}
