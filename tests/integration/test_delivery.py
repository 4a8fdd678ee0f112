"""The delivery state machine against a real database: guarded, bulk, idempotent."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select
from sqlalchemy.orm import Session, sessionmaker

from broadcaster.alerts import lifecycle
from broadcaster.alerts import services as alerts
from broadcaster.dispatch.models import Delivery, DeliveryStatus
from broadcaster.dispatch.states import DeliveryChange, DeliveryStateMachine, SuppressReason
from broadcaster.settings import Settings
from broadcaster.staff import operators
from tests.integration.test_lifecycle import weather_draft

D = DeliveryStatus


def an_alert_id(session: Session, settings: Settings) -> int:
    author = operators.create_operator(
        session=session,
        username=f"author{datetime.now(UTC).microsecond}",
        role="operator",
        display_name="Author",
        created_by="system:test",
    )
    return alerts.create_alert(
        session=session, settings=settings, author=author, draft=weather_draft()
    ).id


def seed_deliveries(session: Session, settings: Settings, count: int) -> tuple[int, list[int]]:
    alert_id = an_alert_id(session, settings)
    session.execute(
        insert(Delivery),
        [
            {
                "alert_id": alert_id,
                "subscriber_id": i,
                "contact_point_id": i,
                "channel": "sms",
                "language": "pl",
            }
            for i in range(1, count + 1)
        ],
    )
    ids = session.scalars(
        select(Delivery.id).where(Delivery.alert_id == alert_id).order_by(Delivery.id)
    ).all()
    return alert_id, list(ids)


def statuses(session: Session, alert_id: int) -> dict[int, D]:
    return dict(
        session.execute(
            select(Delivery.id, Delivery.status).where(Delivery.alert_id == alert_id)
        ).all()
    )


def test_a_batch_is_claimed_once(db: sessionmaker[Session], settings: Settings) -> None:
    with db.begin() as session:
        alert_id, ids = seed_deliveries(session, settings, 10)
    with db.begin() as session:
        assert DeliveryStateMachine(session).claim(ids) == ids
    with db.begin() as session:
        # The same batch delivered a second time by the broker: nothing left to claim.
        assert DeliveryStateMachine(session).claim(ids) == []
        rows = session.scalars(select(Delivery).where(Delivery.alert_id == alert_id)).all()
        assert {r.status for r in rows} == {D.SENDING}
        assert {r.attempts for r in rows} == {1}


def test_outcomes_move_only_rows_in_the_expected_state(
    db: sessionmaker[Session], settings: Settings
) -> None:
    with db.begin() as session:
        alert_id, ids = seed_deliveries(session, settings, 6)
        machine = DeliveryStateMachine(session)
        machine.claim(ids[:5])
        sent = machine.record_sent(
            [
                DeliveryChange(ids[0], provider_id="sms-1"),
                DeliveryChange(ids[1], provider_id="sms-2"),
                DeliveryChange(ids[5], provider_id="never-claimed"),
            ]
        )
        assert sent == 2
        assert machine.record_permanent_failure([DeliveryChange(ids[2], error_code="13")]) == 1
        retry_at = datetime.now(UTC) + timedelta(minutes=5)
        assert (
            machine.record_temporary_failure(
                [DeliveryChange(ids[3], error_code="503")], retry_at=retry_at
            )
            == 1
        )
        assert (
            machine.record_receipts(
                delivered=[DeliveryChange(ids[0]), DeliveryChange(ids[2])],
                undelivered=[DeliveryChange(ids[1], error_code="405")],
            )
            == 2
        )
        assert statuses(session, alert_id) == {
            ids[0]: D.DELIVERED,
            ids[1]: D.FAILED,
            ids[2]: D.FAILED,
            ids[3]: D.PENDING,
            ids[4]: D.SENDING,
            ids[5]: D.PENDING,
        }
        row = session.get_one(Delivery, ids[0])
        session.refresh(row)
        assert row.provider_id == "sms-1"
        assert row.sent_at is not None
        assert row.finished_at is not None
        failed = session.get_one(Delivery, ids[1])
        session.refresh(failed)
        assert failed.error_code == "405"


def test_a_retry_waits_for_its_time(db: sessionmaker[Session], settings: Settings) -> None:
    with db.begin() as session:
        _, ids = seed_deliveries(session, settings, 1)
        machine = DeliveryStateMachine(session)
        machine.claim(ids)
        retry_at = datetime.now(UTC) + timedelta(seconds=30)
        machine.record_temporary_failure(
            [DeliveryChange(ids[0], error_code="429")], retry_at=retry_at
        )
        assert machine.claim(ids) == []
        assert machine.claim(ids, now=retry_at + timedelta(seconds=1)) == ids
        row = session.get_one(Delivery, ids[0])
        session.refresh(row)
        assert row.attempts == 2


def test_suppressing_an_alert_stops_only_what_has_not_left(
    db: sessionmaker[Session], settings: Settings
) -> None:
    with db.begin() as session:
        alert_id, ids = seed_deliveries(session, settings, 4)
        machine = DeliveryStateMachine(session)
        machine.claim(ids[:2])
        machine.record_sent([DeliveryChange(ids[0], provider_id="x")])
        assert machine.suppress(reason=SuppressReason.CANCELLED, alert_id=alert_id) == 2
        assert statuses(session, alert_id) == {
            ids[0]: D.SENT,
            ids[1]: D.SENDING,
            ids[2]: D.SUPPRESSED,
            ids[3]: D.SUPPRESSED,
        }
        reasons = set(
            session.scalars(select(Delivery.reason).where(Delivery.status == D.SUPPRESSED))
        )
        assert reasons == {"cancelled"}
        assert machine.suppress(reason=SuppressReason.OPTED_OUT, delivery_ids=ids) == 0


def test_a_report_that_overtakes_the_send_is_kept(
    db: sessionmaker[Session], settings: Settings
) -> None:
    with db.begin() as session:
        alert_id, ids = seed_deliveries(session, settings, 2)
        machine = DeliveryStateMachine(session)
        machine.claim(ids)
        # The provider's report arrives before the worker records what it sent.
        assert (
            machine.record_receipts(
                delivered=[DeliveryChange(ids[0], provider_id="m-1")],
                undelivered=[DeliveryChange(ids[1], provider_id="m-2", error_code="405")],
            )
            == 2
        )
        assert (
            machine.record_sent(
                [
                    DeliveryChange(ids[0], provider_id="m-1"),
                    DeliveryChange(ids[1], provider_id="m-2"),
                ]
            )
            == 0
        )
        rows = {
            r.id: r for r in session.scalars(select(Delivery).where(Delivery.alert_id == alert_id))
        }
        for row in rows.values():
            session.refresh(row)
        assert (rows[ids[0]].status, rows[ids[0]].provider_id) == (D.DELIVERED, "m-1")
        assert (rows[ids[1]].status, rows[ids[1]].error_code) == (D.FAILED, "405")
        assert rows[ids[0]].claimed_at is not None


def test_cancel_and_expiry_suppress_what_has_not_left(
    db: sessionmaker[Session], settings: Settings
) -> None:
    from broadcaster.alerts.models import Alert, AlertStatus
    from broadcaster.staff.models import Operator

    with db.begin() as session:
        cancelled_id, cancelled_rows = seed_deliveries(session, settings, 3)
        DeliveryStateMachine(session).claim(cancelled_rows[:1])
        expiring_id = an_alert_id(session, settings)
        session.execute(
            insert(Delivery),
            [
                {
                    "alert_id": expiring_id,
                    "subscriber_id": 9,
                    "contact_point_id": 99,
                    "channel": "email",
                    "language": "pl",
                }
            ],
        )
        author = session.get_one(Operator, session.get_one(Alert, cancelled_id).author_id)
    with db.begin() as session:
        lifecycle.cancel_alert(
            session=session, actor=author, alert_id=cancelled_id, reason="odwołane"
        )
    with db.begin() as session:
        rows = statuses(session, cancelled_id)
        assert sorted(rows.values()) == [D.SENDING, D.SUPPRESSED, D.SUPPRESSED]
        later = datetime.now(UTC) + timedelta(days=3)
        assert lifecycle.expire_due_alerts(session=session, now=later) == [expiring_id]
    with db() as session:
        assert session.get_one(Alert, expiring_id).status is AlertStatus.EXPIRED
        assert set(statuses(session, expiring_id).values()) == {D.SUPPRESSED}
        reasons = set(
            session.scalars(select(Delivery.reason).where(Delivery.alert_id == expiring_id))
        )
        assert reasons == {"expired"}
