"""The alert lifecycle and its four-eyes rule, on SQLite and PostgreSQL."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from broadcaster.alerts import lifecycle
from broadcaster.alerts import services as alerts
from broadcaster.alerts.drafts import AlertDraft
from broadcaster.alerts.lifecycle import Move
from broadcaster.alerts.models import Alert, AlertStatus
from broadcaster.audit.models import AuditEvent
from broadcaster.errors import Conflict, Forbidden, InvalidInput
from broadcaster.settings import Settings
from tests.conftest import Staff


def weather_draft(**changes: object) -> AlertDraft:
    fields: dict[str, object] = {
        "topic": "weather-warning",
        "districts": ["mokotow", "wola"],
        "severity": "Severe",
        "urgency": "Expected",
        "channels": ["sms", "push", "email"],
        "contents": {
            "pl": ("Ostrzeżenie przed burzami", "Silne burze z gradem od 18:00. Zostań w domu."),
            "en": ("Thunderstorm warning", "Severe thunderstorms with hail from 18:00."),
        },
    }
    fields.update(changes)
    return AlertDraft(**fields)  # type: ignore[arg-type]


def new_alert(
    db: sessionmaker[Session], settings: Settings, staff: Staff, **changes: object
) -> int:
    with db.begin() as session:
        alert = alerts.create_alert(
            session=session, settings=settings, author=staff.author, draft=weather_draft(**changes)
        )
        return alert.id


def test_happy_path_through_every_state(
    db: sessionmaker[Session], settings: Settings, staff: Staff
) -> None:
    alert_id = new_alert(db, settings, staff)
    with db.begin() as session:
        alert = lifecycle.submit_alert(
            session=session, settings=settings, actor=staff.author, alert_id=alert_id
        )
        assert alert.status is AlertStatus.AWAITING_APPROVAL
        alert = lifecycle.approve_alert(
            session=session, settings=settings, approver=staff.approver, alert_id=alert_id
        )
        assert alert.status is AlertStatus.APPROVED
        assert alert.approver_id == staff.approver.id
        lifecycle.transition(
            session=session, alert=alert, move=Move.START_DISPATCH, actor="system:test"
        )
        lifecycle.transition(session=session, alert=alert, move=Move.FINISH, actor="system:test")
        assert alert.status is AlertStatus.DONE
    with db() as session:
        actions = session.scalars(
            select(AuditEvent.action)
            .where(AuditEvent.object_type == "alert")
            .order_by(AuditEvent.seq)
        ).all()
    assert actions == [
        "alert.created",
        "alert.submit",
        "alert.approve",
        "alert.start_dispatch",
        "alert.finish",
    ]


def test_author_cannot_approve_own_alert(
    db: sessionmaker[Session], settings: Settings, staff: Staff
) -> None:
    # An admin may write and approve, but never both for the same alert.
    with db.begin() as session:
        alert = alerts.create_alert(
            session=session, settings=settings, author=staff.admin, draft=weather_draft()
        )
        lifecycle.submit_alert(
            session=session, settings=settings, actor=staff.admin, alert_id=alert.id
        )
        alert_id = alert.id
    with db.begin() as session, pytest.raises(Forbidden, match="second person"):
        lifecycle.approve_alert(
            session=session, settings=settings, approver=staff.admin, alert_id=alert_id
        )
    with db.begin() as session:
        assert session.get_one(Alert, alert_id).status is AlertStatus.AWAITING_APPROVAL


@pytest.mark.parametrize("who", ["author", "second_author", "auditor"])
def test_only_approvers_approve(
    db: sessionmaker[Session], settings: Settings, staff: Staff, who: str
) -> None:
    alert_id = new_alert(db, settings, staff)
    with db.begin() as session:
        lifecycle.submit_alert(
            session=session, settings=settings, actor=staff.author, alert_id=alert_id
        )
    with db.begin() as session, pytest.raises(Forbidden, match="approver or admin"):
        lifecycle.approve_alert(
            session=session, settings=settings, approver=getattr(staff, who), alert_id=alert_id
        )


def test_auditor_cannot_write(db: sessionmaker[Session], settings: Settings, staff: Staff) -> None:
    with db.begin() as session, pytest.raises(Forbidden):
        alerts.create_alert(
            session=session, settings=settings, author=staff.auditor, draft=weather_draft()
        )


def test_deactivated_staff_are_refused(
    db: sessionmaker[Session], settings: Settings, staff: Staff
) -> None:
    alert_id = new_alert(db, settings, staff)
    with db.begin() as session:
        lifecycle.submit_alert(
            session=session, settings=settings, actor=staff.author, alert_id=alert_id
        )
        approver = session.merge(staff.approver)
        approver.active = False
    with db.begin() as session, pytest.raises(Forbidden, match="deactivated"):
        lifecycle.approve_alert(
            session=session, settings=settings, approver=approver, alert_id=alert_id
        )


def test_expired_alert_cannot_be_approved(
    db: sessionmaker[Session], settings: Settings, staff: Staff
) -> None:
    alert_id = new_alert(db, settings, staff)
    with db.begin() as session:
        lifecycle.submit_alert(
            session=session, settings=settings, actor=staff.author, alert_id=alert_id
        )
        # Time passes while it waits for approval.
        session.execute(
            update(Alert)
            .where(Alert.id == alert_id)
            .values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
        )
    with db.begin() as session, pytest.raises(Conflict, match="expired"):
        lifecycle.approve_alert(
            session=session, settings=settings, approver=staff.approver, alert_id=alert_id
        )
    with db.begin() as session:
        assert lifecycle.expire_due_alerts(session=session) == [alert_id]
    with db.begin() as session:
        assert session.get_one(Alert, alert_id).status is AlertStatus.EXPIRED
        with pytest.raises(Conflict, match="is expired"):
            lifecycle.approve_alert(
                session=session, settings=settings, approver=staff.approver, alert_id=alert_id
            )


def test_cancelled_alert_cannot_be_approved(
    db: sessionmaker[Session], settings: Settings, staff: Staff
) -> None:
    alert_id = new_alert(db, settings, staff)
    with db.begin() as session:
        lifecycle.submit_alert(
            session=session, settings=settings, actor=staff.author, alert_id=alert_id
        )
        lifecycle.cancel_alert(
            session=session, actor=staff.author, alert_id=alert_id, reason="duplicate"
        )
    with db.begin() as session, pytest.raises(Conflict, match="is cancelled"):
        lifecycle.approve_alert(
            session=session, settings=settings, approver=staff.approver, alert_id=alert_id
        )
    with db.begin() as session, pytest.raises(Conflict):
        lifecycle.cancel_alert(
            session=session, actor=staff.author, alert_id=alert_id, reason="again"
        )


def test_reject_returns_a_draft_with_the_reason(
    db: sessionmaker[Session], settings: Settings, staff: Staff
) -> None:
    alert_id = new_alert(db, settings, staff)
    with db.begin() as session:
        lifecycle.submit_alert(
            session=session, settings=settings, actor=staff.author, alert_id=alert_id
        )
        with pytest.raises(InvalidInput, match="reason"):
            lifecycle.reject_alert(
                session=session, approver=staff.approver, alert_id=alert_id, reason=" "
            )
        alert = lifecycle.reject_alert(
            session=session,
            approver=staff.approver,
            alert_id=alert_id,
            reason="Dodaj tłumaczenie na ukraiński",
        )
        assert alert.status is AlertStatus.DRAFT
        assert alert.status_reason == "Dodaj tłumaczenie na ukraiński"
    with db.begin() as session:
        edited = alerts.edit_draft(
            session=session,
            settings=settings,
            editor=staff.author,
            alert_id=alert_id,
            draft=weather_draft(
                contents={
                    "pl": ("Burze", "Silne burze od 18:00."),
                    "uk": ("Грози", "Сильні грози з 18:00."),
                }
            ),
        )
        assert edited.content_for("uk").title == "Грози"
        assert (
            edited.content_for("en").title == "Burze"
        )  # no English any more: Polish is the fallback
        lifecycle.submit_alert(
            session=session, settings=settings, actor=staff.author, alert_id=alert_id
        )


def test_only_drafts_are_edited_and_only_by_their_author(
    db: sessionmaker[Session], settings: Settings, staff: Staff
) -> None:
    alert_id = new_alert(db, settings, staff)
    with db.begin() as session, pytest.raises(Forbidden, match="author"):
        alerts.edit_draft(
            session=session,
            settings=settings,
            editor=staff.second_author,
            alert_id=alert_id,
            draft=weather_draft(),
        )
    with db.begin() as session:
        lifecycle.submit_alert(
            session=session, settings=settings, actor=staff.author, alert_id=alert_id
        )
    with db.begin() as session, pytest.raises(Conflict, match="only a draft"):
        alerts.edit_draft(
            session=session,
            settings=settings,
            editor=staff.author,
            alert_id=alert_id,
            draft=weather_draft(),
        )


def test_a_stale_view_loses_the_race(
    db: sessionmaker[Session], settings: Settings, staff: Staff
) -> None:
    """Two approvers act on one alert: the guarded update lets exactly one win."""
    alert_id = new_alert(db, settings, staff)
    with db.begin() as session:
        lifecycle.submit_alert(
            session=session, settings=settings, actor=staff.author, alert_id=alert_id
        )
    with db.begin() as first:
        lifecycle.approve_alert(
            session=first, settings=settings, approver=staff.approver, alert_id=alert_id
        )
    with db.begin() as second:
        alert = second.get_one(Alert, alert_id)
        with pytest.raises(Conflict, match="cannot approve"):
            lifecycle.transition(session=second, alert=alert, move=Move.APPROVE, actor="operator:0")


def test_scheduled_alert_keeps_its_time(
    db: sessionmaker[Session], settings: Settings, staff: Staff
) -> None:
    send_at = datetime.now(UTC) + timedelta(hours=2)
    alert_id = new_alert(db, settings, staff, send_at=send_at)
    with db() as session:
        alert = session.get_one(Alert, alert_id)
        assert alert.send_at == send_at.replace(microsecond=alert.send_at.microsecond)
        assert alert.expires_at == send_at + timedelta(hours=settings.default_alert_lifetime_hours)


@pytest.mark.parametrize(
    ("changes", "field", "fragment"),
    [
        ({"topic": "floods"}, "topic", "unknown topic 'floods'"),
        ({"districts": ["mokotow", "gotham"]}, "districts", "unknown district 'gotham'"),
        ({"districts": []}, "districts", "at least one district"),
        ({"whole_city": True}, "districts", "must be empty"),
        ({"severity": "Catastrophic"}, "severity", "Extreme"),
        ({"urgency": "Now"}, "urgency", "Immediate"),
        ({"cap_status": "Draft"}, "cap_status", "Exercise"),
        ({"channels": []}, "channels", "at least one"),
        ({"channels": ["sms", "fax"]}, "channels", "sms, push, email"),
        ({"contents": {"en": ("Storm", "Storm at 18:00")}}, "contents.pl", "Polish"),
        ({"contents": {"pl": ("", "Burza")}}, "contents.pl.title", "required"),
        ({"contents": {"pl": ("Burza", "x" * 2001)}}, "contents.pl.body", "longer"),
        ({"contents": {"de": ("Sturm", "Sturm")}}, "contents", "pl, en, uk"),
        ({"send_at": datetime.now(UTC) - timedelta(minutes=5)}, "send_at", "in the past"),
        ({"send_at": datetime(2030, 1, 1, 12, 0)}, "send_at", "time zone"),  # noqa: DTZ001
        (
            {
                "send_at": datetime.now(UTC) + timedelta(hours=2),
                "expires_at": datetime.now(UTC) + timedelta(hours=1),
            },
            "expires_at",
            "later than send_at",
        ),
        ({"expires_at": datetime.now(UTC) - timedelta(hours=1)}, "expires_at", "in the past"),
    ],
)
def test_bad_drafts_are_refused_whole(
    db: sessionmaker[Session],
    settings: Settings,
    staff: Staff,
    changes: dict[str, object],
    field: str,
    fragment: str,
) -> None:
    with db() as session:
        audit_before = session.scalar(select(func.count()).select_from(AuditEvent))
    with db.begin() as session, pytest.raises(InvalidInput) as caught:
        alerts.create_alert(
            session=session, settings=settings, author=staff.author, draft=weather_draft(**changes)
        )
    assert caught.value.field == field
    assert fragment in caught.value.message
    with db() as session:
        assert session.scalar(select(func.count()).select_from(Alert)) == 0
        assert session.scalar(select(func.count()).select_from(AuditEvent)) == audit_before


def test_an_admin_who_edits_a_draft_cannot_approve_it(
    db: sessionmaker[Session], settings: Settings, staff: Staff
) -> None:
    alert_id = new_alert(db, settings, staff)
    with db.begin() as session:
        alerts.edit_draft(
            session=session,
            settings=settings,
            editor=staff.admin,
            alert_id=alert_id,
            draft=weather_draft(contents={"pl": ("Inny tytuł", "Inna treść")}),
        )
        lifecycle.submit_alert(
            session=session, settings=settings, actor=staff.author, alert_id=alert_id
        )
    with db.begin() as session, pytest.raises(Forbidden, match="second person"):
        lifecycle.approve_alert(
            session=session, settings=settings, approver=staff.admin, alert_id=alert_id
        )
    with db.begin() as session:
        assert (
            lifecycle.approve_alert(
                session=session, settings=settings, approver=staff.approver, alert_id=alert_id
            ).status
            is AlertStatus.APPROVED
        )


def test_whoever_submits_cannot_approve(
    db: sessionmaker[Session], settings: Settings, staff: Staff
) -> None:
    alert_id = new_alert(db, settings, staff)
    with db.begin() as session:
        lifecycle.submit_alert(
            session=session, settings=settings, actor=staff.admin, alert_id=alert_id
        )
    with db.begin() as session, pytest.raises(Forbidden):
        lifecycle.approve_alert(
            session=session, settings=settings, approver=staff.admin, alert_id=alert_id
        )


def test_an_edit_from_a_stale_view_cannot_change_a_submitted_alert(
    db: sessionmaker[Session], settings: Settings, staff: Staff
) -> None:
    alert_id = new_alert(db, settings, staff)
    with db() as stale:
        assert stale.get_one(Alert, alert_id).status is AlertStatus.DRAFT  # the editor's view...
        stale.commit()  # ...without holding a transaction open, as a web page would not
        with db.begin() as session:  # ...while the author submits it
            lifecycle.submit_alert(
                session=session, settings=settings, actor=staff.author, alert_id=alert_id
            )
        with pytest.raises(Conflict, match="only a draft"):
            alerts.edit_draft(
                session=stale,
                settings=settings,
                editor=staff.author,
                alert_id=alert_id,
                draft=weather_draft(contents={"pl": ("Podmiana", "Niezatwierdzona treść")}),
            )
        stale.rollback()
    with db() as session:
        assert (
            session.get_one(Alert, alert_id).content_for("pl").title == "Ostrzeżenie przed burzami"
        )


def test_a_stale_approval_loses_the_race(
    db: sessionmaker[Session], settings: Settings, staff: Staff
) -> None:
    alert_id = new_alert(db, settings, staff)
    with db.begin() as session:
        lifecycle.submit_alert(
            session=session, settings=settings, actor=staff.author, alert_id=alert_id
        )
    with db() as stale:
        seen = stale.get_one(Alert, alert_id)
        assert seen.status is AlertStatus.AWAITING_APPROVAL
        stale.commit()
        with db.begin() as session:
            lifecycle.cancel_alert(
                session=session, actor=staff.author, alert_id=alert_id, reason="duplikat"
            )
        with pytest.raises(Conflict, match="cannot approve"):
            lifecycle.transition(session=stale, alert=seen, move=Move.APPROVE, actor="operator:0")
        stale.rollback()


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"topic": ["weather-warning"]}, "topic"),
        ({"districts": "mokotow"}, "districts"),
        ({"districts": [1, 2]}, "districts"),
        ({"channels": "sms"}, "channels"),
        ({"contents": {"pl": ("tylko tytuł",)}}, "contents.pl"),
        ({"contents": {"pl": ("Tytuł", 42)}}, "contents.pl"),
        ({"contents": "Burza"}, "contents"),
        ({"send_at": "2030-01-01T10:00"}, "send_at"),
    ],
)
def test_malformed_drafts_name_the_field(
    db: sessionmaker[Session],
    settings: Settings,
    staff: Staff,
    changes: dict[str, object],
    field: str,
) -> None:
    with db.begin() as session, pytest.raises(InvalidInput) as caught:
        alerts.create_alert(
            session=session, settings=settings, author=staff.author, draft=weather_draft(**changes)
        )
    assert caught.value.field == field
