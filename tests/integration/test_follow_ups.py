"""Update and Cancel messages reach exactly those who received the original alert."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from broadcaster.alerts import follow_ups, lifecycle
from broadcaster.alerts import services as alerts
from broadcaster.alerts.drafts import AlertDraft
from broadcaster.alerts.models import Alert, AlertStatus, MsgType, Severity
from broadcaster.audit.models import AuditEvent
from broadcaster.clock import WARSAW
from broadcaster.dispatch import planning, progress, receipts, rendering, sending
from broadcaster.dispatch.audience import count_audience
from broadcaster.dispatch.models import Delivery, DeliveryStatus
from broadcaster.dispatch.outbox import BatchRef
from broadcaster.errors import Conflict, Forbidden, InvalidInput, NotFound
from broadcaster.residents.personal_data import erase_resident
from broadcaster.settings import Settings
from broadcaster.staff.models import Operator, Role
from channels.interfaces import DeliveryResult, Outcome
from channels.sms import Report
from subscribers import services
from subscribers.models import ContactPoint, Subscriber
from tests.conftest import Staff, add_resident, send_alert

UPDATE_TEXT = {"pl": ("Burza słabnie", "Burze słabną, grad już nie grozi.")}
CANCEL_TEXT = {"pl": ("Burza", "Ostrzeżenie przed burzami jest nieaktualne.")}

# name -> (contact channels, subscriber language)
PEOPLE: dict[str, tuple[tuple[str, ...], str]] = {
    "sent": (("sms", "email"), "pl"),  # both messages sent
    "delivered": (("sms",), "pl"),  # sent, then a receipt: delivered
    "bounced": (("sms",), "pl"),  # sent, then a receipt: undelivered (failed)
    "failed": (("email",), "pl"),  # refused for good by the provider
    "mixed": (("sms", "email"), "pl"),  # SMS sent, e-mail refused
    "retrying": (("sms",), "pl"),  # a temporary failure: still waiting
    "held": (("sms", "email"), "pl"),  # inside quiet hours: held until they end
    "sleeper": (("sms",), "pl"),  # quiet hours outlast the alert: suppressed
    "unsubscribed": (("sms", "email"), "pl"),  # sent; later STOPs the SMS
    "erased": (("sms",), "pl"),  # sent; later erased
    "disabled": (("email",), "pl"),  # sent; the address disabled since
    "mover": (("sms",), "pl"),  # sent; follows other topics since
    "unwanting": (("sms", "email"), "pl"),  # sent; no longer wants SMS
    "polyglot": (("email",), "en"),  # sent; switched to Ukrainian since
    "night_owl": (("sms",), "pl"),  # sent; in quiet hours since
}
OUTCOMES = {
    ("failed", "email"): Outcome.PERMANENT,
    ("mixed", "email"): Outcome.PERMANENT,
    ("retrying", "sms"): Outcome.TEMPORARY,
}
RECEIPTS = {("delivered", "sms"): "404", ("bounced", "sms"): "405"}


def address(name: str, channel: str) -> str:
    number = list(PEOPLE).index(name)
    return f"60100{number:04d}" if channel == "sms" else f"{name}@example.com"


def clock(now: datetime, hours: float) -> time:
    local = now.astimezone(WARSAW) + timedelta(hours=hours)
    return local.time().replace(second=0, microsecond=0)


@dataclass
class Town:
    """The residents, their contact point ids, and the original alert sent to them."""

    now: datetime
    original_id: int
    points: dict[tuple[str, str], int] = field(default_factory=dict)
    subscribers: dict[str, int] = field(default_factory=dict)

    def expected(self, *pairs: tuple[str, str]) -> set[tuple[int, str]]:
        return {(self.points[pair], pair[1]) for pair in pairs}


# Those still reached by a follow-up: they received the original and can be reached now.
RECEIVED_AND_REACHABLE = (
    ("sent", "sms"),
    ("sent", "email"),
    ("delivered", "sms"),
    ("mixed", "sms"),
    ("unsubscribed", "email"),
    ("mover", "sms"),
    ("unwanting", "email"),
    ("polyglot", "email"),
    ("night_owl", "sms"),
)


def approved(db: sessionmaker[Session], settings: Settings, staff: Staff, **changes: object) -> int:
    fields: dict[str, object] = {
        "topic": "weather-warning",
        "districts": ["wola"],
        "severity": "Moderate",
        "urgency": "Expected",
        "channels": ["sms", "email"],
        "contents": {"pl": ("Burza", "Silne burze od 18:00."), "en": ("Storm", "Storms.")},
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


def send_due(
    db: sessionmaker[Session],
    settings: Settings,
    alert_id: int,
    due: list[BatchRef],
    outcome_of: dict[int, Outcome],
) -> list[str]:
    """Claim each due batch and record an outcome per delivery (sent unless told);
    returns the texts sent."""
    texts = []
    for batch in due:
        with db.begin() as session:
            claimed = sending.claim(
                session=session,
                settings=settings,
                variants=rendering.Variants(),
                alert_id=alert_id,
                batch_no=batch.batch_no,
            )
            assert claimed is not None
            results = []
            for message in claimed.messages:
                texts.append(message.text)
                outcome = outcome_of.get(message.delivery_id, Outcome.SENT)
                results.append(
                    DeliveryResult(
                        message.delivery_id,
                        outcome,
                        provider_id=f"p{message.delivery_id}" if outcome is Outcome.SENT else None,
                        error_code=None if outcome is Outcome.SENT else "smtp-550",
                        retry_after=600 if outcome is Outcome.TEMPORARY else None,
                    )
                )
            sending.record(session=session, claimed=claimed, results=results)
    return texts


@pytest.fixture
def town(db: sessionmaker[Session], settings: Settings, staff: Staff) -> Town:
    """An original alert dispatched to everyone in PEOPLE, each outcome as its name says,
    and then the changes of heart that came after it."""
    now = datetime.now(UTC).replace(microsecond=0)
    windows = {"held": (clock(now, -1), clock(now, 1)), "sleeper": (clock(now, -1), clock(now, 6))}
    subscribers: dict[str, int] = {}
    points: dict[tuple[str, str], int] = {}
    with db.begin() as session:
        for name, (channels, language) in PEOPLE.items():
            person = add_resident(
                session,
                settings,
                contacts=[(channel, address(name, channel)) for channel in channels],
                topics=["weather-warning"],
                districts=["wola"],
                language=language,
            )
            subscribers[name] = person.id
            for point in person.contact_points:
                points[(name, point.channel)] = point.id
            if name in windows:
                person.quiet_from, person.quiet_until = windows[name]
    original_id = approved(db, settings, staff, expires_at=now + timedelta(hours=3))
    plan = planning.plan_alert(sessions=db, alert_id=original_id, now=now)
    assert plan is not None
    by_point = {point: pair for pair, point in points.items()}
    with db() as session:
        deliveries = dict(
            session.execute(
                select(Delivery.contact_point_id, Delivery.id).where(
                    Delivery.alert_id == original_id
                )
            ).all()
        )
    delivery_of = {by_point[point]: delivery for point, delivery in deliveries.items()}
    send_due(
        db,
        settings,
        original_id,
        plan.due,
        {delivery_of[pair]: outcome for pair, outcome in OUTCOMES.items()},
    )
    with db.begin() as session:
        applied = receipts.apply_smsapi_reports(
            session=session,
            reports=[
                Report(f"p{delivery_of[pair]}", status, str(delivery_of[pair]))
                for pair, status in RECEIPTS.items()
            ],
        )
        assert applied["applied"] == 2
    with db() as session:
        statuses = {
            by_point[point]: status
            for point, status in session.execute(
                select(Delivery.contact_point_id, Delivery.status).where(
                    Delivery.alert_id == original_id
                )
            )
        }
    assert statuses == {
        **{pair: DeliveryStatus.SENT for pair in points},
        ("delivered", "sms"): DeliveryStatus.DELIVERED,
        ("bounced", "sms"): DeliveryStatus.FAILED,
        ("failed", "email"): DeliveryStatus.FAILED,
        ("mixed", "email"): DeliveryStatus.FAILED,
        ("retrying", "sms"): DeliveryStatus.PENDING,
        ("held", "sms"): DeliveryStatus.PENDING,
        ("held", "email"): DeliveryStatus.PENDING,
        ("sleeper", "sms"): DeliveryStatus.SUPPRESSED,
    }
    with db.begin() as session:
        services.unsubscribe_contact(
            session=session, channel="sms", address=address("unsubscribed", "sms"), via="sms-stop"
        )
        erase_resident(session=session, subscriber_id=subscribers["erased"], actor="system:test")
        session.execute(
            update(ContactPoint)
            .where(ContactPoint.id == points[("disabled", "email")])
            .values(disabled_at=now, disabled_reason="email-bounces")
        )
        services.set_subscriptions(
            session=session,
            subscriber=session.get_one(Subscriber, subscribers["mover"]),
            topics=["air-quality"],
            districts=["mokotow"],
        )
        services.set_preferences(
            session=session,
            subscriber=session.get_one(Subscriber, subscribers["unwanting"]),
            channels=["email"],
        )
        services.set_preferences(
            session=session,
            subscriber=session.get_one(Subscriber, subscribers["polyglot"]),
            language="uk",
        )
        owl = session.get_one(Subscriber, subscribers["night_owl"])
        owl.quiet_from, owl.quiet_until = clock(now, -1), clock(now, 2)
        newcomer = add_resident(
            session,
            settings,
            contacts=[("sms", "601009999"), ("email", "newcomer@example.com")],
            topics=["weather-warning"],
            districts=["wola"],
        )
        for point in newcomer.contact_points:
            points[("newcomer", point.channel)] = point.id
    return Town(now=now, original_id=original_id, points=points, subscribers=subscribers)


def planned(session: Session, alert_id: int) -> dict[tuple[int, str], tuple[str, str, bool]]:
    """(contact point, channel) -> (language, status, held for quiet hours) of each
    delivery of the alert."""
    return {
        (point, channel): (language, status.value, held is not None)
        for point, channel, language, status, held in session.execute(
            select(
                Delivery.contact_point_id,
                Delivery.channel,
                Delivery.language,
                Delivery.status,
                Delivery.next_attempt_at,
            ).where(Delivery.alert_id == alert_id)
        )
    }


def approve(
    db: sessionmaker[Session], settings: Settings, staff: Staff, author: Operator, alert_id: int
) -> None:
    """Four eyes: the author submits, cannot approve it, and a second person does."""
    with db.begin() as session:
        lifecycle.submit_alert(session=session, settings=settings, actor=author, alert_id=alert_id)
    refusal = "second person" if author.role is Role.ADMIN else "approver or admin role"
    with db.begin() as session, pytest.raises(Forbidden, match=refusal):
        lifecycle.approve_alert(
            session=session, settings=settings, approver=author, alert_id=alert_id
        )
    with db.begin() as session:
        lifecycle.approve_alert(
            session=session, settings=settings, approver=staff.approver, alert_id=alert_id
        )


def test_an_update_reaches_exactly_those_who_received_the_original(
    db: sessionmaker[Session], settings: Settings, staff: Staff, town: Town
) -> None:
    # While the original still holds messages back (quiet hours, a retry), an Update
    # would miss them: the operator is told to wait or to cancel it.
    with db.begin() as session, pytest.raises(Conflict, match=r"original_id: .* still being"):
        follow_ups.create_follow_up(
            session=session,
            settings=settings,
            author=staff.admin,
            original_id=town.original_id,
            msg_type="update",
            contents=UPDATE_TEXT,
        )
    with db.begin() as session:
        lifecycle.cancel_alert(
            session=session, actor=staff.author, alert_id=town.original_id, reason="Ustąpiło"
        )
        update_ = follow_ups.create_follow_up(
            session=session,
            settings=settings,
            author=staff.admin,
            original_id=town.original_id,
            msg_type="update",
            contents=UPDATE_TEXT,
            severity="Severe",
        )
        update_id = update_.id
        assert (update_.msg_type, update_.references_id) == (MsgType.UPDATE, town.original_id)
        assert (update_.status, update_.severity) == (AlertStatus.DRAFT, Severity.SEVERE)
        assert [d.slug for d in update_.districts] == ["wola"]
        assert update_.channels == ["sms", "email"]
        created = session.scalars(
            select(AuditEvent.payload).where(
                AuditEvent.action == "alert.created", AuditEvent.object_id == str(update_id)
            )
        ).one()
        assert '"msg_type":"update"' in created and f'"references":{town.original_id}' in created
    with db.begin() as session:  # a draft is not planned
        assert planning.plan_alert(sessions=db, alert_id=update_id) is None
    approve(db, settings, staff, staff.admin, update_id)
    with db.begin() as session:
        assert count_audience(session=session, alert=session.get_one(Alert, update_id)) == {
            "sms": 5,
            "email": 4,
        }
        plan = planning.plan_alert(sessions=db, alert_id=update_id, now=town.now)
    assert plan is not None and plan.urgent
    with db() as session:
        deliveries = planned(session, update_id)
        assert progress.read(session, update_id) == {"sms": {"pending": 5}, "email": {"pending": 4}}
    assert set(deliveries) == town.expected(*RECEIVED_AND_REACHABLE)
    # Severe: quiet hours do not hold it; each in the language they have now.
    polyglot = (town.points[("polyglot", "email")], "email")
    assert deliveries[polyglot] == ("uk", "pending", False)
    assert {v for k, v in deliveries.items() if k != polyglot} == {("pl", "pending", False)}
    texts = send_due(db, settings, update_id, plan.due, {})
    assert "AKTUALIZACJA. Burza słabnie: Burze słabną, grad już nie grozi." in texts


def test_a_cancel_reaches_the_same_people_and_stops_the_original(
    db: sessionmaker[Session], settings: Settings, staff: Staff, town: Town
) -> None:
    with db.begin() as session:
        cancel = follow_ups.create_follow_up(
            session=session,
            settings=settings,
            author=staff.author,
            original_id=town.original_id,
            msg_type="cancel",
            contents=CANCEL_TEXT,
        )
        cancel_id = cancel.id
        assert (cancel.msg_type, cancel.severity) == (MsgType.CANCEL, Severity.MODERATE)
    # The original was still dispatching: it stops now, what it held back is suppressed.
    with db() as session:
        original = session.get_one(Alert, town.original_id)
        assert original.status is AlertStatus.CANCELLED
        assert original.status_reason == f"withdrawn by its Cancel message, alert {cancel_id}"
        assert progress.read(session, town.original_id)["sms"].get("pending", 0) == 0
        held = session.get_one(
            Delivery,
            session.scalar(
                select(Delivery.id).where(
                    Delivery.alert_id == town.original_id,
                    Delivery.contact_point_id == town.points[("held", "sms")],
                )
            ),
        )
        assert (held.status, held.reason) == (DeliveryStatus.SUPPRESSED, "cancelled")
    with db.begin() as session, pytest.raises(Forbidden):
        lifecycle.approve_alert(
            session=session, settings=settings, approver=staff.second_author, alert_id=cancel_id
        )
    approve(db, settings, staff, staff.author, cancel_id)
    plan = planning.plan_alert(sessions=db, alert_id=cancel_id, now=town.now)
    assert plan is not None and not plan.urgent
    with db() as session:
        deliveries = planned(session, cancel_id)
    assert set(deliveries) == town.expected(*RECEIVED_AND_REACHABLE)
    # Moderate, like the original: the night owl's quiet hours hold it until morning.
    owl = (town.points[("night_owl", "sms")], "sms")
    assert deliveries[owl] == ("pl", "pending", True)
    assert {v[2] for k, v in deliveries.items() if k != owl} == {False}
    texts = send_due(db, settings, cancel_id, plan.due, {})
    assert "ODWOŁANIE ALERTU. Burza: Ostrzeżenie przed burzami jest nieaktualne." in texts
    # Withdrawn: nothing follows a Cancel.
    for kind in ("update", "cancel"):
        with db.begin() as session, pytest.raises(Conflict, match="already withdrawn"):
            follow_ups.create_follow_up(
                session=session,
                settings=settings,
                author=staff.author,
                original_id=town.original_id,
                msg_type=kind,
                contents=UPDATE_TEXT,
            )


def finished_original(
    db: sessionmaker[Session], settings: Settings, staff: Staff, outcome: Outcome
) -> int:
    """An SMS alert to three residents, every message ending in `outcome`, and done."""
    with db.begin() as session:
        for n in range(3):
            add_resident(
                session,
                settings,
                contacts=[("sms", f"60200000{n}")],
                topics=["weather-warning"],
                districts=["wola"],
            )
    alert_id = approved(db, settings, staff, channels=["sms"], severity="Severe")
    send_alert(db, settings, alert_id, outcome=outcome)
    return alert_id


def test_updates_of_a_finished_alert_and_the_follow_ups_refused(
    db: sessionmaker[Session], settings: Settings, staff: Staff
) -> None:
    done = finished_original(db, settings, staff, Outcome.SENT)
    never_sent = approved(db, settings, staff, channels=["sms"])

    def create(**changes: object) -> Alert:
        fields: dict[str, object] = {
            "author": staff.author,
            "original_id": done,
            "msg_type": "update",
            "contents": UPDATE_TEXT,
        }
        fields.update(changes)
        with db.begin() as session:
            return follow_ups.create_follow_up(session=session, settings=settings, **fields)  # type: ignore[arg-type]

    first = create().id
    second = create(contents={**UPDATE_TEXT, "uk": ("Гроза слабшає", "Град більше не загрожує.")})
    assert second.id != first  # several updates may follow one alert
    refusals: list[tuple[dict[str, object], type[Exception], str]] = [
        ({"msg_type": "alert"}, InvalidInput, "msg_type"),
        ({"msg_type": "ack"}, InvalidInput, "msg_type"),
        ({"msg_type": "cancel", "severity": "Minor"}, InvalidInput, "severity"),
        ({"msg_type": "cancel", "urgency": "Past"}, InvalidInput, "urgency"),
        ({"severity": "Dreadful"}, InvalidInput, "severity"),
        ({"contents": {"en": ("Storm", "Over.")}}, InvalidInput, "contents.pl"),
        ({"contents": {"pl": ("", "Koniec.")}}, InvalidInput, "contents.pl.title"),
        ({"expires_at": datetime(2020, 1, 1, tzinfo=UTC)}, InvalidInput, "expires_at"),
        ({"original_id": "1"}, InvalidInput, "original_id"),
        ({"original_id": first}, InvalidInput, "original_id"),
        ({"original_id": 987654}, NotFound, "alert 987654"),
        ({"original_id": never_sent}, Conflict, r"original_id: .* never dispatched"),
        ({"author": staff.auditor}, Forbidden, "operator or admin role"),
        ({"author": staff.approver}, Forbidden, "operator or admin role"),
    ]
    for changes, error, message in refusals:
        with pytest.raises(error, match=message) as raised:
            create(**changes)
        if isinstance(raised.value, InvalidInput):
            assert raised.value.field == message, changes
    # A Cancel draft that was itself dropped before it went out withdraws nothing.
    dropped = create(msg_type="cancel", contents=CANCEL_TEXT).id
    with db.begin() as session:
        lifecycle.cancel_alert(
            session=session, actor=staff.author, alert_id=dropped, reason="Pomyłka"
        )
    assert create(msg_type="cancel", contents=CANCEL_TEXT).status is AlertStatus.DRAFT
    with db() as session:
        assert session.get_one(Alert, done).status is AlertStatus.DONE  # not cancelled again


def test_an_alert_that_reached_nobody_has_nobody_to_follow_up(
    db: sessionmaker[Session], settings: Settings, staff: Staff
) -> None:
    nobody = finished_original(db, settings, staff, Outcome.PERMANENT)
    with db.begin() as session, pytest.raises(Conflict, match="reached nobody"):
        follow_ups.create_follow_up(
            session=session,
            settings=settings,
            author=staff.author,
            original_id=nobody,
            msg_type="cancel",
            contents=CANCEL_TEXT,
        )


def test_a_follow_up_of_an_exercise_reaches_only_the_test_audience(
    db: sessionmaker[Session], settings: Settings, staff: Staff
) -> None:
    with db.begin() as session:
        people = [
            add_resident(
                session,
                settings,
                contacts=[("sms", f"60300000{n}")],
                topics=["weather-warning"],
                districts=["wola"],
                test_audience=n < 2,
            ).id
            for n in range(3)
        ]
    exercise = approved(db, settings, staff, channels=["sms"], cap_status="Exercise")
    send_alert(db, settings, exercise)
    with db.begin() as session:
        # The second tester has left the test audience since.
        session.execute(
            update(Subscriber).where(Subscriber.id == people[1]).values(test_audience=False)
        )
        follow_up = follow_ups.create_follow_up(
            session=session,
            settings=settings,
            author=staff.author,
            original_id=exercise,
            msg_type="update",
            contents=UPDATE_TEXT,
        )
        follow_up_id = follow_up.id
    approve(db, settings, staff, staff.author, follow_up_id)
    with db.begin() as session:
        plan = planning.plan_alert(sessions=db, alert_id=follow_up_id)
        assert plan is not None
        reached = session.scalars(
            select(Delivery.subscriber_id).where(Delivery.alert_id == follow_up_id)
        ).all()
    assert reached == [people[0]]
    texts = send_due(db, settings, follow_up_id, plan.due, {})
    assert texts == ["ĆWICZENIA. AKTUALIZACJA. Burza słabnie: Burze słabną, grad już nie grozi."]
