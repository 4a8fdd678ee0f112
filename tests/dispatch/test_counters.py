"""Every transition of the delivery state machine moves the alerts' progress counters by
exactly the rows it moved: after each step, on both databases, the counters equal a count
of the rows by (channel, status)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from broadcaster.dispatch import planning, progress, receipts, rendering, sending, sweeper
from broadcaster.dispatch.models import Delivery, DeliveryStatus
from broadcaster.dispatch.states import DeliveryChange, DeliveryStateMachine, SuppressReason
from broadcaster.settings import Settings
from channels.interfaces import DeliveryResult, Failure, Outcome
from tests.conftest import Staff
from tests.integration.test_dispatch import approved_alert
from tests.integration.test_dispatch import residents as residents

D = DeliveryStatus


def rows_by_status(session: Session, alert_id: int) -> dict[str, dict[str, int]]:
    counted: dict[str, dict[str, int]] = {}
    for channel, status, n in session.execute(
        select(Delivery.channel, Delivery.status, func.count())
        .where(Delivery.alert_id == alert_id)
        .group_by(Delivery.channel, Delivery.status)
    ):
        counted.setdefault(channel, {})[status.value] = n
    return counted


def assert_counted(session: Session, *alert_ids: int) -> None:
    for alert_id in alert_ids:
        assert progress.read(session, alert_id) == rows_by_status(session, alert_id)


def ids_in(session: Session, alert_id: int, channel: str, status: D) -> list[int]:
    return list(
        session.scalars(
            select(Delivery.id)
            .where(
                Delivery.alert_id == alert_id,
                Delivery.channel == channel,
                Delivery.status == status,
            )
            .order_by(Delivery.id)
        )
    )


def first_batch(session: Session, alert_id: int, channel: str) -> int:
    return int(
        session.scalars(
            select(func.min(Delivery.batch_no)).where(
                Delivery.alert_id == alert_id, Delivery.channel == channel
            )
        ).one()
    )


def planned(db: sessionmaker[Session], settings: Settings, staff: Staff, **changes: object) -> int:
    alert_id = approved_alert(db, settings, staff, **changes)
    with db.begin() as session:
        assert planning.plan_alert(sessions=db, alert_id=alert_id, batch_size=3) is not None
        assert_counted(session, alert_id)
    return alert_id


def test_each_transition_moves_its_counters(
    db: sessionmaker[Session], settings: Settings, staff: Staff, residents: None
) -> None:
    both = planned(db, settings, staff)  # 7 SMS and 7 e-mails, in batches of 3
    sms_only = planned(db, settings, staff, channels=["sms"])
    later = datetime.now(UTC) + timedelta(minutes=10)
    with db.begin() as session:
        machine = DeliveryStateMachine(session)
        sms_batch = first_batch(session, both, "sms")
        assert machine.claim_batch(alert_id=both, batch_no=sms_batch)
        assert_counted(session, both)
        sending_sms = ids_in(session, both, "sms", D.SENDING)
        emails = ids_in(session, both, "email", D.PENDING)
        assert machine.claim(emails[:4]) == emails[:4]
        assert_counted(session, both)
        # One call over rows of two alerts and two channels.
        other = ids_in(session, sms_only, "sms", D.PENDING)
        assert machine.claim([*other[:2], *emails[4:5]]) == sorted([*other[:2], emails[4]])
        mixed = [*sending_sms[:1], *other[:2], *emails[:2]]
        assert machine.record_sent([DeliveryChange(i, provider_id=f"p{i}") for i in mixed]) == 5
        assert_counted(session, both, sms_only)
        assert machine.record_permanent_failure([DeliveryChange(emails[2], error_code="x")]) == 1
        assert_counted(session, both)
        retry = [DeliveryChange(emails[3], error_code="t")]
        assert machine.record_temporary_failure(retry, retry_at=later) == 1
        assert_counted(session, both)
    with db.begin() as session:
        machine = DeliveryStateMachine(session)
        # Receipts from sent and from still sending, to delivered and to failed.
        assert (
            machine.record_receipts(
                delivered=[DeliveryChange(sending_sms[0]), DeliveryChange(sending_sms[1])],
                undelivered=[DeliveryChange(other[0], error_code="405")],
            )
            == 3
        )
        assert_counted(session, both, sms_only)
        assert machine.release_stale(alert_id=both, batch_no=sms_batch, claimed_before=later) == 1
        assert_counted(session, both)
        assert (
            machine.withdraw(
                reason=SuppressReason.CANCELLED, alert_id=both, delivery_ids=[emails[4]]
            )
            == 1
        )
        assert_counted(session, both)
        assert machine.suppress(reason=SuppressReason.OPTED_OUT, delivery_ids=emails[5:]) == 2
        assert_counted(session, both)
        points = session.scalars(
            select(Delivery.contact_point_id).where(
                Delivery.alert_id == both, Delivery.channel == "sms"
            )
        ).all()
        # An erased resident's rows, in both alerts.
        assert machine.suppress(reason=SuppressReason.ERASED, contact_point_ids=points[:3]) > 0
        assert_counted(session, both, sms_only)
        assert machine.suppress(reason=SuppressReason.CANCELLED, alert_id=sms_only) > 0
        assert_counted(session, both, sms_only)
    with db() as session:
        assert_counted(session, both, sms_only)


def test_counted_once_writes_the_counters_at_the_end(
    db: sessionmaker[Session], settings: Settings, staff: Staff, residents: None
) -> None:
    alert_id = planned(db, settings, staff, channels=["sms"])
    with db.begin() as session:
        before = progress.read(session, alert_id)
        machine = DeliveryStateMachine(session)
        with machine.counted_once():
            batch_no = first_batch(session, alert_id, "sms")
            won = [r.delivery_id for r in machine.claim_batch(alert_id=alert_id, batch_no=batch_no)]
            machine.record_sent([DeliveryChange(won[0])])
            machine.record_permanent_failure([DeliveryChange(won[1], error_code="x")])
            assert progress.read(session, alert_id) == before
        assert_counted(session, alert_id)


def test_a_batch_sent_swept_and_reported_keeps_its_counters(
    db: sessionmaker[Session], settings: Settings, staff: Staff, residents: None
) -> None:
    """The counters through the real pipeline steps: claim, record, the sweeper's release
    of a dead worker's rows, and SMSAPI's delivery reports."""
    alert_id = planned(db, settings, staff)
    start = datetime.now(UTC)
    with db.begin() as session:
        plan = sweeper.sweep(session=session, lease_seconds=60, now=start)
        assert_counted(session, alert_id)
    batches = sorted({(ref.batch_no, ref.channel) for ref in plan.batches})
    variants = rendering.Variants()
    claims = []
    with db.begin() as session:
        for batch_no, _ in batches:
            claimed = sending.claim(
                session=session,
                settings=settings,
                variants=variants,
                alert_id=alert_id,
                batch_no=batch_no,
                now=start,
            )
            assert claimed is not None
            claims.append(claimed)
        assert_counted(session, alert_id)
    dead, *recorded = claims  # the first batch's worker dies holding it
    with db.begin() as session:
        for claimed in recorded:
            outcomes = {
                0: lambda i: DeliveryResult(i, Outcome.SENT, provider_id=f"m{i}"),
                1: Failure(temporary=False, code="13").result,
                2: Failure(temporary=True, code="500").result,
            }
            results = [outcomes[n % 3](m.delivery_id) for n, m in enumerate(claimed.messages)]
            sending.record(session=session, claimed=claimed, results=results, now=start)
            assert_counted(session, alert_id)
    with db.begin() as session:
        found = sweeper.sweep(session=session, lease_seconds=60, now=start + timedelta(hours=1))
        assert found.released == len(dead.messages)
        assert_counted(session, alert_id)
    with db.begin() as session:
        sent = session.scalars(
            select(Delivery.id).where(
                Delivery.alert_id == alert_id,
                Delivery.channel == "sms",
                Delivery.status == D.SENT,
            )
        ).all()
        reports = [receipts.Report(f"m{i}", "404", str(i)) for i in sent]
        tally = receipts.apply_smsapi_reports(session=session, reports=reports)
        assert tally["applied"] == len(sent) > 0
        assert_counted(session, alert_id)
