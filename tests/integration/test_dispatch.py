"""Planning, the outbox, claims, outcomes and receipts, in process, on both databases."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, time, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from broadcaster.alerts import lifecycle
from broadcaster.alerts import services as alerts
from broadcaster.alerts.drafts import AlertDraft
from broadcaster.dispatch import planning, progress, receipts, rendering, sending, sweeper
from broadcaster.dispatch.models import BatchState, Delivery, DeliveryStatus, DispatchBatch
from broadcaster.dispatch.outbox import Outbox
from broadcaster.http.app import create_app
from broadcaster.settings import Settings
from channels.interfaces import DeliveryResult, Outcome
from channels.sms import Report
from subscribers.models import ContactPoint
from tests.conftest import Staff, add_resident


def approved_alert(
    db: sessionmaker[Session], settings: Settings, staff: Staff, **changes: object
) -> int:
    fields: dict[str, object] = {
        "topic": "weather-warning",
        "districts": ["wola"],
        "severity": "Severe",
        "urgency": "Immediate",
        "channels": ["sms", "email"],
        "contents": {"pl": ("Burza", "Silne burze od 18:00.")},
    }
    fields.update(changes)
    with db.begin() as session:
        alert = alerts.create_alert(
            session=session, settings=settings, author=staff.author, draft=AlertDraft(**fields)
        )  # type: ignore[arg-type]
        lifecycle.submit_alert(
            session=session, settings=settings, actor=staff.author, alert_id=alert.id
        )
        alert_id = alert.id
    with db.begin() as session:
        lifecycle.approve_alert(
            session=session, settings=settings, approver=staff.approver, alert_id=alert_id
        )
    return alert_id


@pytest.fixture
def residents(db: sessionmaker[Session], settings: Settings) -> None:
    with db.begin() as session:
        for n in range(7):
            add_resident(
                session,
                settings,
                contacts=[("sms", f"60100070{n}"), ("email", f"r{n}@example.com")],
                topics=["weather-warning"],
                districts=["wola"],
            )


def test_a_plan_whose_publish_was_lost_is_published_by_the_sweeper(
    db: sessionmaker[Session], settings: Settings, staff: Staff, residents: None
) -> None:
    alert_id = approved_alert(db, settings, staff)
    with db.begin() as session:
        found = sweeper.sweep(session=session, lease_seconds=60)
        assert found.plans == [alert_id]
    plan = planning.plan_alert(sessions=db, alert_id=alert_id, batch_size=3)
    assert plan is not None
    # sms 7 -> 3 batches of 3, 3, 1; e-mail likewise: 6 batches, all due now.
    assert plan.batches == 6 and len(plan.due) == 6
    with db.begin() as session:
        assert planning.plan_alert(sessions=db, alert_id=alert_id) is None  # planned once
        assert progress.read(session, alert_id) == {"sms": {"pending": 7}, "email": {"pending": 7}}
    # The worker died before publishing: the sweeper finds every batch in the outbox...
    with db.begin() as session:
        republished = sweeper.sweep(session=session, lease_seconds=60)
    assert sorted((b.channel, b.batch_no) for b in republished.batches) == sorted(
        (b.channel, b.batch_no) for b in plan.due
    )
    # ...and, having published them, leaves them alone for a while.
    with db.begin() as session:
        assert sweeper.sweep(session=session, lease_seconds=60).batches == []


def test_a_waiting_batch_is_published_again_only_once_its_queue_has_drained(
    db: sessionmaker[Session], settings: Settings, staff: Staff, residents: None
) -> None:
    alert_id = approved_alert(db, settings, staff)
    with db.begin() as session:
        plan = planning.plan_alert(sessions=db, alert_id=alert_id, batch_size=3)
        assert plan is not None
        Outbox(session).mark_enqueued(refs=plan.due)
    later = datetime.now(UTC) + timedelta(seconds=60)
    # Published a minute ago and not run: while the SMS queue still holds messages, its
    # batches are waiting their turn; the e-mail queue is empty, so its batches were lost.
    with db.begin() as session:
        found = sweeper.sweep(
            session=session,
            lease_seconds=600,
            requeue_seconds=30,
            now=later,
            busy_channels=frozenset({"sms"}),
        )
    assert {b.channel for b in found.batches} == {"email"}
    with db.begin() as session:
        found = sweeper.sweep(session=session, lease_seconds=600, requeue_seconds=30, now=later)
    assert {b.channel for b in found.batches} == {"sms"}


def test_claims_outcomes_retries_and_the_end_of_an_alert(
    db: sessionmaker[Session], settings: Settings, staff: Staff, residents: None
) -> None:
    alert_id = approved_alert(db, settings, staff, channels=["sms"])
    plan = planning.plan_alert(sessions=db, alert_id=alert_id, batch_size=10)
    assert plan is not None
    [batch] = plan.due
    variants = rendering.Variants()
    with db.begin() as session:
        claimed = sending.claim(
            session=session,
            settings=settings,
            variants=variants,
            alert_id=alert_id,
            batch_no=batch.batch_no,
        )
    assert claimed is not None and len(claimed.messages) == 7
    assert {m.text for m in claimed.messages} == {"Burza: Silne burze od 18:00."}
    with db.begin() as session:  # the same batch again: nothing to claim
        assert (
            sending.claim(
                session=session,
                settings=settings,
                variants=variants,
                alert_id=alert_id,
                batch_no=batch.batch_no,
            )
            is None
        )
    ids = [m.delivery_id for m in claimed.messages]
    results = [DeliveryResult(i, Outcome.SENT, provider_id=f"m{i}") for i in ids[:5]]
    results.append(DeliveryResult(ids[5], Outcome.PERMANENT, error_code="13", disable_address=True))
    results.append(DeliveryResult(ids[6], Outcome.TEMPORARY, error_code="http-500", retry_after=30))
    # Retry-After counts from the answer: from before the record, however slow the machine.
    answered = datetime.now(UTC)
    with db.begin() as session:
        recorded = sending.record(session=session, claimed=claimed, results=results)
    assert (recorded.sent, recorded.failed, recorded.retrying) == (5, 1, 1)
    with db() as session:
        assert progress.read(session, alert_id) == {"sms": {"sent": 5, "failed": 1, "pending": 1}}
        # The provider called that number invalid: it is not used again.
        dead = session.get_one(ContactPoint, session.get_one(Delivery, ids[5]).contact_point_id)
        assert (dead.disabled_at is not None, dead.disabled_reason) == (
            True,
            "sms-provider-refused",
        )
        retry = session.get_one(Delivery, ids[6])
        assert retry.next_attempt_at is not None
        assert retry.next_attempt_at >= answered + timedelta(seconds=30)  # Retry-After
        state = session.scalar(
            select(DispatchBatch.state).where(DispatchBatch.alert_id == alert_id)
        )
        assert state is BatchState.QUEUED  # one row still waits
    later = datetime.now(UTC) + timedelta(minutes=5)
    with db.begin() as session:
        again = sending.claim(
            session=session,
            settings=settings,
            variants=variants,
            alert_id=alert_id,
            batch_no=batch.batch_no,
            now=later,
        )
        assert again is not None and [m.delivery_id for m in again.messages] == [ids[6]]
        sending.record(
            session=session,
            claimed=again,
            now=later,
            results=[DeliveryResult(ids[6], Outcome.SENT, provider_id="m-late")],
        )
    with db.begin() as session:
        found = sweeper.sweep(session=session, lease_seconds=60, now=later)
    assert found.finished == [alert_id]


def test_receipts_over_http_are_applied_and_unknown_ones_counted(
    db: sessionmaker[Session],
    settings: Settings,
    staff: Staff,
    residents: None,
    database_url: str,
) -> None:
    alert_id = approved_alert(db, settings, staff, channels=["sms"])
    with db.begin() as session:
        plan = planning.plan_alert(sessions=db, alert_id=alert_id, batch_size=10)
        assert plan is not None
        claimed = sending.claim(
            session=session,
            settings=settings,
            variants=rendering.Variants(),
            alert_id=alert_id,
            batch_no=plan.due[0].batch_no,
        )
        assert claimed is not None
        ids = [m.delivery_id for m in claimed.messages]
        sending.record(
            session=session,
            claimed=claimed,
            results=[DeliveryResult(i, Outcome.SENT, provider_id=f"p{i}") for i in ids],
        )

    tallies: Counter[str] = Counter()

    def apply(reports: list[dict[str, str]]) -> None:
        with db.begin() as session:
            tallies.update(
                receipts.apply_smsapi_reports(
                    session=session,
                    reports=[Report(r["provider_id"], r["status"], r["idx"]) for r in reports],
                )
            )

    secret = "callback-secret-0123456789"
    app_settings = settings.model_copy(
        update={"database_url": database_url, "smsapi_callback_secret": secret}
    )
    reports = f"/callbacks/smsapi/reports/{secret}"
    client = TestClient(create_app(app_settings, publish=apply, plan_now=lambda *_: None))
    answer = client.get(
        reports,
        params={
            # Delivered, undelivered, not ours, still pending, and one naming another
            # message than the one SMSAPI gave that delivery.
            "MsgId": f"p{ids[0]},p{ids[1]},x,y,p{ids[4]}",
            "status": "404,405,404,403,405",
            "idx": f"{ids[0]},{ids[1]},999999,{ids[2]},{ids[3]}",
            "donedate": "1,1,1,1,1",
            "username": "city",
        },
    )
    assert (answer.status_code, answer.text) == (200, "OK")
    answer = client.post(reports, data={"MsgId": f"p{ids[0]}", "status": "404", "idx": str(ids[0])})
    assert (answer.status_code, answer.text) == (200, "OK")
    assert tallies == Counter(
        {"applied": 2, "unknown": 1, "pending": 1, "stale": 1, "mismatched": 1}
    )
    with db() as session:
        assert progress.read(session, alert_id) == {"sms": {"delivered": 1, "failed": 1, "sent": 5}}
        failed = session.get_one(Delivery, ids[1])
        assert (failed.status, failed.error_code) == (DeliveryStatus.FAILED, "405")
        assert session.get_one(Delivery, ids[3]).status is DeliveryStatus.SENT
        assert progress.receipts(session)["smsapi"] == {
            "applied": 2,
            "unknown": 1,
            "pending": 1,
            "stale": 1,
            "mismatched": 1,
        }
    for bad, field in (
        ({"status": "404", "idx": "1"}, "MsgId"),
        ({"MsgId": "a,b", "status": "404", "idx": "1"}, "MsgId"),
    ):
        refused = client.get(reports, params=bad)
        assert refused.status_code == 422
        assert field in refused.text


def test_quiet_hours_are_settled_at_planning(
    db: sessionmaker[Session], settings: Settings, staff: Staff
) -> None:
    from datetime import time

    from broadcaster.dispatch.planning import WARSAW, quiet_until

    at_night = datetime(2026, 12, 1, 23, 30, tzinfo=WARSAW).astimezone(UTC)
    assert quiet_until(time(22, 0), time(7, 0), at_night) == datetime(
        2026, 12, 2, 7, 0, tzinfo=WARSAW
    )
    assert quiet_until(time(22, 0), time(7, 0), at_night + timedelta(hours=9)) is None
    assert quiet_until(time(1, 0), time(5, 0), at_night) is None
    assert quiet_until(None, None, at_night) is None


def test_an_address_that_keeps_bouncing_is_disabled(
    db: sessionmaker[Session], settings: Settings, staff: Staff
) -> None:
    with db.begin() as session:
        resident = add_resident(
            session,
            settings,
            contacts=[("email", "gone@example.com")],
            topics=["weather-warning"],
            districts=["wola"],
        )
        point_id = resident.contact_points[0].id
    for round_number in range(1, 4):
        alert_id = approved_alert(db, settings, staff, channels=["email"])
        with db.begin() as session:
            plan = planning.plan_alert(sessions=db, alert_id=alert_id)
            assert plan is not None
            claimed = sending.claim(
                session=session,
                settings=settings,
                variants=rendering.Variants(),
                alert_id=alert_id,
                batch_no=plan.due[0].batch_no,
            )
            assert claimed is not None
            [message] = claimed.messages
            assert message.unsubscribe_url and "/u/" in message.unsubscribe_url
            sending.record(
                session=session,
                claimed=claimed,
                results=[
                    DeliveryResult(message.delivery_id, Outcome.PERMANENT, error_code="smtp-550")
                ],
            )
        with db() as session:
            point = session.get_one(ContactPoint, point_id)
            assert point.bounces == round_number
            assert (point.disabled_at is not None) == (round_number == 3)
    assert point.disabled_reason == "email-bounces"


def _planned(session: Session, alert_id: int) -> dict[int, list[tuple[str, datetime | None, str]]]:
    """batch number -> (channel, next_attempt_at, status) of each of its deliveries, after
    checking that the batch rows agree with the deliveries they count."""
    rows: dict[int, list[tuple[str, datetime | None, str]]] = {}
    for number, channel, held, status in session.execute(
        select(Delivery.batch_no, Delivery.channel, Delivery.next_attempt_at, Delivery.status)
        .where(Delivery.alert_id == alert_id)
        .order_by(Delivery.id)
    ):
        rows.setdefault(number, []).append((channel, held, status.value))
    batches = session.scalars(select(DispatchBatch).where(DispatchBatch.alert_id == alert_id)).all()
    for batch in batches:
        members = rows[batch.batch_no]
        assert batch.size == len(members)
        assert {(c, h or batch.next_run_at) for c, h, _ in members} == {
            (batch.channel, batch.next_run_at)
        }
    assert set(rows) - {0} == {b.batch_no for b in batches}
    return rows


def test_quiet_hours_hold_or_suppress_at_planning_and_urgent_alerts_ignore_them(
    db: sessionmaker[Session], settings: Settings, staff: Staff
) -> None:
    from broadcaster.dispatch.planning import WARSAW, quiet_until
    from subscribers.models import Subscriber

    now = datetime.now(UTC).replace(microsecond=0)
    local = now.astimezone(WARSAW)

    def clock(hours: int) -> time:
        return (local + timedelta(hours=hours)).time().replace(second=0, microsecond=0)

    windows = {
        "sleeper": (clock(-1), clock(1)),  # inside: held for about an hour
        "late": (clock(-2), clock(3)),  # inside: held for about three hours
        "awake": (clock(2), clock(4)),  # not inside
        "plain": (None, None),
    }
    people = {}
    with db.begin() as session:
        for n, (name, (start, end)) in enumerate(windows.items()):
            person = add_resident(
                session,
                settings,
                contacts=[("sms", f"60100080{n}"), ("email", f"{name}@example.com")],
                topics=["weather-warning"],
                districts=["wola"],
            )
            subscriber = session.get_one(Subscriber, person.id)
            subscriber.quiet_from, subscriber.quiet_until = start, end
            people[name] = person.id
    sleeper_ends = quiet_until(*windows["sleeper"], now)
    late_ends = quiet_until(*windows["late"], now)
    assert sleeper_ends is not None and late_ends is not None
    assert now + timedelta(minutes=58) < sleeper_ends < now + timedelta(minutes=62)

    informational = approved_alert(
        db,
        settings,
        staff,
        severity="Minor",
        urgency="Expected",
        expires_at=now + timedelta(hours=8),
    )
    plan = planning.plan_alert(sessions=db, alert_id=informational, batch_size=2, now=now)
    assert plan is not None
    with db() as session:
        rows = _planned(session, informational)
        assert progress.read(session, informational) == {
            "sms": {"pending": 4},
            "email": {"pending": 4},
        }
    # Now: the two residents awake, one batch per channel; each held group a batch of its own.
    assert Counter((c, h, len(r)) for c, h, r in _shape(rows)) == Counter(
        [
            ("email", None, 2),
            ("sms", None, 2),
            ("email", sleeper_ends, 1),
            ("sms", sleeper_ends, 1),
            ("email", late_ends, 1),
            ("sms", late_ends, 1),
        ]
    )
    assert plan.batches == 6
    assert sorted(b.channel for b in plan.due) == ["email", "sms"]
    assert {rows[b.batch_no][0][1] for b in plan.due} == {None}

    # Expiring between the two ends: the later sleeper is suppressed, counted and recorded.
    short = approved_alert(
        db,
        settings,
        staff,
        severity="Minor",
        urgency="Expected",
        expires_at=now + timedelta(hours=2),
    )
    plan = planning.plan_alert(sessions=db, alert_id=short, batch_size=500, now=now)
    assert plan is not None and plan.batches == 4 and len(plan.due) == 2
    with db() as session:
        rows = _planned(session, short)
        assert progress.read(session, short) == {
            "sms": {"pending": 3, "suppressed": 1},
            "email": {"pending": 3, "suppressed": 1},
        }
        suppressed = session.execute(
            select(Delivery.subscriber_id, Delivery.reason, Delivery.finished_at).where(
                Delivery.alert_id == short, Delivery.status == DeliveryStatus.SUPPRESSED
            )
        ).all()
    assert sorted(c for c, _, _ in rows[0]) == ["email", "sms"]
    assert {(s, r, f) for s, r, f in suppressed} == {(people["late"], "quiet_hours", now)}

    # Severe: quiet hours do not apply; everyone now.
    severe = approved_alert(
        db, settings, staff, severity="Severe", expires_at=now + timedelta(hours=2)
    )
    plan = planning.plan_alert(sessions=db, alert_id=severe, batch_size=3, now=now)
    assert plan is not None and plan.urgent
    with db() as session:
        rows = _planned(session, severe)
        assert progress.read(session, severe) == {"sms": {"pending": 4}, "email": {"pending": 4}}
    assert sorted((c, h, len(r)) for c, h, r in _shape(rows)) == [
        ("email", None, 1),
        ("email", None, 3),
        ("sms", None, 1),
        ("sms", None, 3),
    ]
    assert plan.batches == len(plan.due) == 4


def _shape(
    rows: dict[int, list[tuple[str, datetime | None, str]]],
) -> list[tuple[str, datetime | None, list[tuple[str, datetime | None, str]]]]:
    """(channel, held until, rows) of each batch (not the suppressed rows, batch 0)."""
    return [(r[0][0], r[0][1], r) for number, r in rows.items() if number]
