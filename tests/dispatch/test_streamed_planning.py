"""Planning in chunks: each chunk committed and published while the rest is planned, one
consistent snapshot of the audience, a planner that dies resumed, a planner whose lease
was taken over fenced off, a cancel in the middle; on both databases."""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from broadcaster.alerts import lifecycle
from broadcaster.alerts.models import Alert, AlertStatus
from broadcaster.audit.models import AuditEvent
from broadcaster.db.engine import utcnow
from broadcaster.dispatch import planning, progress, sweeper
from broadcaster.dispatch.models import Delivery, DeliveryStatus, DispatchBatch
from broadcaster.dispatch.outbox import BatchRef, Outbox
from broadcaster.settings import Settings
from tests.conftest import Staff, add_resident
from tests.integration.test_dispatch import approved_alert
from tests.integration.test_dispatch import residents as residents

LEASE = 30.0


class PlannerDied(Exception):
    """Stands for the planner's process dying between two chunks."""


def deliveries(db: sessionmaker[Session], alert_id: int) -> list[tuple[int, str]]:
    with db() as session:
        return [
            (int(point), str(channel))
            for point, channel in session.execute(
                select(Delivery.contact_point_id, Delivery.channel).where(
                    Delivery.alert_id == alert_id
                )
            )
        ]


def alert_row(db: sessionmaker[Session], alert_id: int) -> Alert:
    with db() as session:
        return session.get_one(Alert, alert_id)


def plan(db: sessionmaker[Session], alert_id: int, **options: object) -> planning.Plan | None:
    return planning.plan_alert(
        sessions=db,
        alert_id=alert_id,
        batch_size=2,
        first_chunk=2,
        largest_chunk=4,
        lease_seconds=LEASE,
        **options,  # type: ignore[arg-type]
    )


def test_the_first_chunk_is_committed_and_published_before_the_rest_is_planned(
    db: sessionmaker[Session], settings: Settings, staff: Staff, residents: None
) -> None:
    alert_id = approved_alert(db, settings, staff)  # 7 SMS and 7 e-mails
    seen: list[tuple[list[BatchRef], int, AlertStatus, bool]] = []

    def publish(refs: list[BatchRef]) -> None:
        # What another process sees at the moment each chunk's batches are published.
        row = alert_row(db, alert_id)
        seen.append((refs, len(deliveries(db, alert_id)), row.status, row.planned_at is None))

    done = plan(db, alert_id, publish=publish)
    assert done is not None and done.complete and not done.resumed
    first_refs, written, status, unplanned = seen[0]
    # The first chunk: two SMS in one batch, committed, the alert already dispatching.
    assert [r.channel for r in first_refs] == ["sms"] and written == 2
    assert status is AlertStatus.DISPATCHING and unplanned
    # The most urgent channel is planned whole before the next one starts.
    channels = [ref.channel for refs, *_ in seen for ref in refs]
    assert channels == sorted(channels, key=["sms", "email"].index)
    assert [w for _, w, _, _ in seen] == sorted(w for _, w, _, _ in seen)  # chunks grow it
    assert len(seen) == done.chunks > 2
    # Every batch published once, and every batch's rows are those it says.
    published = [ref.batch_no for refs, *_ in seen for ref in refs]
    assert len(published) == len(set(published)) == done.batches
    with db() as session:
        sizes = dict(
            session.execute(
                select(DispatchBatch.batch_no, DispatchBatch.size).where(
                    DispatchBatch.alert_id == alert_id
                )
            ).all()
        )
        rows = Counter(
            session.scalars(select(Delivery.batch_no).where(Delivery.alert_id == alert_id))
        )
        assert sizes == dict(rows) and max(sizes.values()) <= 2
        assert progress.read(session, alert_id) == {"sms": {"pending": 7}, "email": {"pending": 7}}
    assert alert_row(db, alert_id).planned_at is not None
    assert sorted(Counter(c for _, c in deliveries(db, alert_id)).items()) == [
        ("email", 7),
        ("sms", 7),
    ]


def test_the_audience_is_one_snapshot_while_residents_change_it(
    db: sessionmaker[Session], settings: Settings, staff: Staff, residents: None
) -> None:
    alert_id = approved_alert(db, settings, staff, channels=["sms"])
    newcomer: list[int] = []
    calls = 0

    def publish(_refs: list[BatchRef]) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:  # someone subscribes while the alert is being planned
            with db.begin() as session:
                resident = add_resident(
                    session,
                    settings,
                    contacts=[("sms", "601000999")],
                    topics=["weather-warning"],
                    districts=["wola"],
                )
                newcomer.extend(p.id for p in resident.contact_points)

    done = plan(db, alert_id, publish=publish)
    assert done is not None and done.complete and calls > 1 and newcomer
    planned = deliveries(db, alert_id)
    # The seven there when planning began, each once; not the one who came during it.
    assert len(planned) == len({p for p, _ in planned}) == 7
    assert not set(newcomer) & {p for p, _ in planned}
    with db() as session:
        assert progress.read(session, alert_id) == {"sms": {"pending": 7}}


def test_a_planner_that_died_is_resumed_where_it_stopped(
    db: sessionmaker[Session], settings: Settings, staff: Staff, residents: None
) -> None:
    alert_id = approved_alert(db, settings, staff)

    def die(_refs: list[BatchRef]) -> None:
        raise PlannerDied

    with pytest.raises(PlannerDied):
        plan(db, alert_id, publish=die)
    first = deliveries(db, alert_id)
    assert len(first) == 2 and alert_row(db, alert_id).planned_at is None
    # While its lease runs, nobody takes the alert over, and the sweeper leaves it be.
    assert plan(db, alert_id) is None
    now = utcnow()
    with db.begin() as session:
        assert (
            sweeper.alerts_to_plan(
                session=session, now=now, silent_since=now - timedelta(seconds=LEASE)
            )
            == []
        )
    # Nor is it finished, though no batch of it is left queued.
    with db.begin() as session:
        Outbox(session).close(alert_ids=[alert_id])
        assert sweeper.finish_alerts(session=session, now=now) == []
    later = now + timedelta(seconds=LEASE + 1)
    with db.begin() as session:
        assert sweeper.alerts_to_plan(
            session=session, now=later, silent_since=later - timedelta(seconds=LEASE)
        ) == [alert_id]
    resumed = plan(db, alert_id, now=later)
    assert resumed is not None and resumed.complete and resumed.resumed
    planned = deliveries(db, alert_id)
    assert len(planned) == len(set(planned)) == 14 and set(first) <= set(planned)
    assert sum(resumed.counts.values()) == 12
    with db() as session:
        assert progress.read(session, alert_id) == {"sms": {"pending": 7}, "email": {"pending": 7}}
        numbers = list(
            session.scalars(
                select(DispatchBatch.batch_no).where(DispatchBatch.alert_id == alert_id)
            )
        )
        assert len(numbers) == len(set(numbers))
        actions = list(
            session.scalars(
                select(AuditEvent.action)
                .where(AuditEvent.object_type == "alert", AuditEvent.object_id == str(alert_id))
                .order_by(AuditEvent.seq)
            )
        )
    assert actions[-2:] == ["alert.planning_resumed", "alert.planned"]
    assert alert_row(db, alert_id).planned_at is not None


def test_a_planner_whose_lease_was_taken_over_writes_nothing_more(
    db: sessionmaker[Session], settings: Settings, staff: Staff, residents: None
) -> None:
    alert_id = approved_alert(db, settings, staff)
    taken_over: list[planning.Plan | None] = []

    def stall_then_lose_the_lease(_refs: list[BatchRef]) -> None:
        if not taken_over:  # the planner stalls past its lease; another takes over
            later = utcnow() + timedelta(seconds=LEASE + 1)
            taken_over.append(plan(db, alert_id, now=later))

    stalled = plan(db, alert_id, publish=stall_then_lose_the_lease)
    assert stalled is not None and not stalled.complete and stalled.chunks == 1
    [other] = taken_over
    assert other is not None and other.complete and other.resumed
    planned = deliveries(db, alert_id)
    assert len(planned) == len(set(planned)) == 14
    with db() as session:
        assert progress.read(session, alert_id) == {"sms": {"pending": 7}, "email": {"pending": 7}}


def test_a_cancel_between_two_chunks_ends_the_plan_and_nothing_stays_pending(
    db: sessionmaker[Session], settings: Settings, staff: Staff, residents: None
) -> None:
    alert_id = approved_alert(db, settings, staff)
    calls = 0

    def cancel_after_the_first(_refs: list[BatchRef]) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            with db.begin() as session:
                lifecycle.cancel_alert(
                    session=session, actor=staff.author, alert_id=alert_id, reason="odwołany"
                )

    stopped = plan(db, alert_id, publish=cancel_after_the_first)
    assert stopped is not None and not stopped.complete and calls == 1
    with db() as session:
        statuses = Counter(
            session.scalars(select(Delivery.status).where(Delivery.alert_id == alert_id))
        )
        assert statuses == Counter({DeliveryStatus.SUPPRESSED: 2})
        assert progress.read(session, alert_id) == {"sms": {"suppressed": 2}}
        assert session.get_one(Alert, alert_id).status is AlertStatus.CANCELLED
    # Nothing is left for the sweeper: the alert is not planned again.
    now = utcnow() + timedelta(seconds=LEASE + 1)
    with db.begin() as session:
        assert sweeper.alerts_to_plan(session=session, now=now, silent_since=now) == []
    assert plan(db, alert_id, now=now) is None


def test_a_plan_steps_aside_for_an_urgent_alert_and_goes_on_after_it(
    db: sessionmaker[Session], settings: Settings, staff: Staff, residents: None
) -> None:
    routine = approved_alert(db, settings, staff, severity="Minor", urgency="Expected")
    urgent: list[int] = []

    def publish(_refs: list[BatchRef]) -> None:
        if not urgent:  # an extreme alert is approved while the routine one is planned
            urgent.append(approved_alert(db, settings, staff, severity="Extreme"))

    paused = plan(db, routine, publish=publish)
    assert paused is not None and paused.stepped_aside and not paused.complete
    assert paused.chunks == 1
    row = alert_row(db, routine)
    assert row.status is AlertStatus.DISPATCHING and row.planned_at is None
    assert row.planner_seen_at is None  # no planner holds it: the next run takes it at once
    with db() as session:
        event = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "alert.planning_paused")
        ).one()
        assert event.object_id == str(routine)
        assert json.loads(event.payload)["for_alerts"] == urgent
        now = utcnow()
        # The sweeper hands on both, the urgent one first, should a hand-off be lost.
        assert sweeper.alerts_to_plan(
            session=session, now=now, silent_since=now - timedelta(seconds=LEASE)
        ) == [urgent[0], routine]
    first = plan(db, urgent[0])
    assert first is not None and first.complete and not first.stepped_aside
    rest = plan(db, routine)
    assert rest is not None and rest.complete and rest.resumed and not rest.stepped_aside
    assert sorted(Counter(deliveries(db, routine)).values()) == [1] * 14  # each once
    with db() as session:
        assert progress.read(session, routine) == {"sms": {"pending": 7}, "email": {"pending": 7}}


def test_an_urgent_plan_does_not_step_aside(
    db: sessionmaker[Session], settings: Settings, staff: Staff, residents: None
) -> None:
    first = approved_alert(db, settings, staff, severity="Extreme")
    second: list[int] = []

    def publish(_refs: list[BatchRef]) -> None:
        if not second:
            second.append(approved_alert(db, settings, staff, severity="Extreme"))

    done = plan(db, first, publish=publish)
    assert done is not None and done.complete and not done.stepped_aside
    assert len(deliveries(db, first)) == 14
