"""Notices to residents (codes and links) sent by the `send_notice` task with the real
channel senders against the sandbox providers: SMSAPI, SMTP and FCM. The tasks are
handed ids of pending requests, which they take and forget."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import timedelta
from email import message_from_string, policy
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from broadcaster.audit import trail as audit
from broadcaster.audit import verification
from broadcaster.db.engine import utcnow
from broadcaster.residents.personal_data import erase_resident
from broadcaster.settings import Settings, get_settings, load_settings
from channels.interfaces import Channel, Outcome
from subscribers import pending
from subscribers.models import ContactPoint, PendingKind, PendingRequest
from subscribers.notices import (
    WORDING,
    Notice,
    NoticeKind,
    Reminder,
    SignUp,
    hold_reminder,
    hold_sign_up,
    queue_manage,
)
from subscribers.pending import new_request_id
from tasks import runtime as runtime_module
from tasks.app import app as celery_app
from tasks.jobs import deliver_notice, log_audit_checkpoint, send_notice, send_reminder
from tasks.jobs import sign_up as sign_up_task
from tasks.runtime import Runtime
from templates.sms_encoding import shape
from tests.channels.conftest import Sandbox
from tests.conftest import TEST_SECRET, add_resident


def sandbox_settings(sandbox: Sandbox, tmp_path: Path) -> dict[str, str]:
    return {
        "WSP_ENV": "test",
        "WSP_DATA_DIR": str(tmp_path),
        "WSP_SECRET_KEY": TEST_SECRET,
        **sandbox.endpoints.environment(),
    }


@pytest.fixture
def rt(sandbox: Sandbox, tmp_path: Path) -> Iterator[Runtime]:
    runtime = Runtime(load_settings(sandbox_settings(sandbox, tmp_path)))
    yield runtime
    close(runtime)


def close(runtime: Runtime) -> None:
    """Close the senders, then the event loop they ran on (its thread stops with it)."""
    loop = runtime.loop()
    runtime.close()
    for _ in range(100):
        if not loop.is_running():
            break
        time.sleep(0.01)
    loop.close()


def notice(kind: NoticeKind, channel: Channel, address: str, language: str = "pl") -> Notice:
    return Notice(
        id=new_request_id(),
        kind=kind,
        channel=channel,
        address=address,
        language=language,
        contact_point_id=7,
        code="482913" if kind is NoticeKind.CODE else "",
        url="https://powiadomienia.um.warszawa.pl/manage/7.1800000000.abc"
        if kind is not NoticeKind.CODE
        else "",
        valid_minutes=15,
    )


@pytest.mark.parametrize("language", ["pl", "en", "uk"])
def test_an_sms_code_fits_one_part_in_every_language(language: str) -> None:
    message = notice(NoticeKind.CODE, Channel.SMS, "+48601000700", language).message()
    assert "482913" in message.text
    assert shape(message.text).parts == 1


def test_every_kind_has_every_language() -> None:
    assert {kind: set(texts) for kind, texts in WORDING.items()} == {
        kind: {"pl", "en", "uk"} for kind in NoticeKind
    }


def test_an_sms_code_reaches_smsapi_once_even_when_the_task_runs_twice(
    rt: Runtime, sandbox: Sandbox
) -> None:
    code = notice(NoticeKind.CODE, Channel.SMS, "+48601000700")
    first = deliver_notice(rt, code)
    assert first.outcome is Outcome.SENT and first.provider_id
    [sent] = sandbox.messages("smsapi")
    assert sent["address"] == "48601000700"
    assert sent["idx"] == str(code.id)
    assert "482913" in sent["text"] and sent["parts"] == 1
    # Redelivered by the broker: SMSAPI refuses the used idx, and nobody gets it twice.
    again = deliver_notice(rt, code)
    assert again.outcome is Outcome.SENT
    assert sandbox.counts("smsapi")["accepted"] == 1


def test_an_email_confirmation_link_reaches_smtp(rt: Runtime, sandbox: Sandbox) -> None:
    confirm = notice(NoticeKind.CONFIRM, Channel.EMAIL, "jan@example.com", "en")
    result = deliver_notice(rt, confirm)
    assert result.outcome is Outcome.SENT
    [mail] = sandbox.messages("smtp")
    assert mail["address"] == "jan@example.com"
    assert mail["subject"] == "Confirm your e-mail address"
    assert mail["parts"] == ["text/plain", "text/html"]
    assert mail["list_unsubscribe"] is None  # a transactional message, not a list
    parsed = message_from_string(mail["raw"], policy=policy.default)
    text = parsed.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    html = parsed.get_body(preferencelist=("html",)).get_content()  # type: ignore[union-attr]
    assert confirm.url in text and f'href="{confirm.url}"' in html


def test_a_push_code_reaches_fcm_with_the_code_in_its_data(rt: Runtime, sandbox: Sandbox) -> None:
    token = "fcm-token_" + "y" * 60
    result = deliver_notice(rt, notice(NoticeKind.CODE, Channel.PUSH, token, "uk"))
    assert result.outcome is Outcome.SENT
    [push] = sandbox.messages("fcm")
    assert push["address"] == token
    assert push["data"] == {"kind": "code", "code": "482913"}
    assert push["title"] == "Код підтвердження"


def test_a_refused_address_is_a_permanent_failure(rt: Runtime, sandbox: Sandbox) -> None:
    sandbox.faults("smtp", refused=["gone@example.com"])
    result = deliver_notice(rt, notice(NoticeKind.MANAGE, Channel.EMAIL, "gone@example.com"))
    assert result.outcome is Outcome.PERMANENT and result.error_code == "smtp-550"


def worker_on(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Point this process's worker runtime at the test's database; its settings."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    get_settings.cache_clear()
    monkeypatch.setattr(runtime_module, "_runtime", None)
    return get_settings()


@pytest.fixture
def task_environment(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    """The process environment a worker would have, pointed at the sandbox."""
    for name, value in sandbox_settings(sandbox, tmp_path).items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    monkeypatch.setattr(runtime_module, "_runtime", None)
    yield get_settings()
    close(runtime_module.runtime())
    get_settings.cache_clear()


def test_the_send_notice_task_sends_what_was_held_and_forgets_it(
    task_environment: Settings,
    sandbox: Sandbox,
    database_url: str,
    db: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = worker_on(database_url, monkeypatch)
    with db.begin() as session:
        resident = add_resident(
            session,
            settings,
            contacts=[("sms", "+48601000701")],
            topics=["weather-warning"],
            districts=["*"],
        )
        [point] = resident.contact_points
        queued = queue_manage(
            session=session, settings=settings, point=point, language="pl", now=time.time()
        )
    outcome = send_notice.apply(args=[queued.id]).get(timeout=30)
    assert outcome == {
        "notice_id": queued.id,
        "kind": "manage",
        "channel": "sms",
        "outcome": "sent",
        "error_code": None,
    }
    [sent] = sandbox.messages("smsapi")
    assert "/my/" in sent["text"] and sent["address"] == "48601000701"
    assert sent["idx"] == str(queued.id)
    with db() as session:
        assert session.scalar(select(func.count()).select_from(PendingRequest)) == 0
    # Delivered twice by the broker (acknowledged late): the second finds nothing.
    assert send_notice.apply(args=[queued.id]).get(timeout=30) == {
        "notice_id": queued.id,
        "outcome": None,
    }
    assert len(sandbox.messages("smsapi")) == 1


@pytest.mark.parametrize(
    ("address", "codes", "kind", "sent"),
    [
        ("+48601000702", False, "manage", 1),  # proven: a manage link
        ("+48601000703", True, "code", 1),  # signed up, unproven: a fresh code
        ("+48601000703", False, None, 0),  # unproven, and a link asked for: nothing
        ("+48609999999", True, None, 0),  # unknown: nothing
    ],
)
def test_the_send_reminder_task_looks_the_address_up_and_sends_what_it_needs(
    task_environment: Settings,
    sandbox: Sandbox,
    database_url: str,
    db: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
    address: str,
    codes: bool,
    kind: str | None,
    sent: int,
) -> None:
    worker_on(database_url, monkeypatch)
    # The notice it queues runs here, in this process, instead of in another worker.
    monkeypatch.setitem(celery_app.conf, "task_always_eager", True)
    settings = get_settings()
    with db.begin() as session:
        for phone, verify in (("+48601000702", True), ("+48601000703", False)):
            add_resident(
                session,
                settings,
                contacts=[("sms", phone)],
                topics=["weather-warning"],
                districts=["*"],
                verify=verify,
            )
        held = hold_reminder(session=session, reminder=Reminder(Channel.SMS, address, codes))
    outcome = send_reminder.apply(args=[held.id]).get(timeout=30)
    assert outcome == {"request_id": held.id, "notice": bool(sent)}
    messages = sandbox.messages("smsapi")
    assert len(messages) == sent
    if kind == "manage":
        assert "/my/" in messages[0]["text"]
    if kind == "code":
        assert "kod" in messages[0]["text"].lower()
    with db() as session:
        assert session.scalar(select(func.count()).select_from(PendingRequest)) == 0
    # Delivered again: the reminder was taken, nothing more is sent.
    assert send_reminder.apply(args=[held.id]).get(timeout=30)["notice"] is False
    assert len(sandbox.messages("smsapi")) == sent


def test_the_sign_up_task_registers_and_sends_the_code(
    task_environment: Settings,
    sandbox: Sandbox,
    database_url: str,
    db: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    worker_on(database_url, monkeypatch)
    monkeypatch.setitem(celery_app.conf, "task_always_eager", True)
    request = SignUp(
        contacts=((Channel.SMS, "+48601000704"),),
        topics=("weather-warning",),
        districts=("mokotow",),
        language="en",
        wanted=(Channel.SMS,),
        quiet_hours=("22:00", "07:00"),
    )
    assert SignUp.from_dict(request.as_dict()) == request
    with db.begin() as session:
        held = hold_sign_up(session=session, request=request)
    assert sign_up_task.apply(args=[held.id]).get(timeout=30) == {
        "request_id": held.id,
        "notices": 1,
        "refused": None,
    }
    # Delivered twice: the sign-up was taken, and registers nothing more.
    assert sign_up_task.apply(args=[held.id]).get(timeout=30)["notices"] == 0
    [sent] = sandbox.messages("smsapi")
    assert sent["address"] == "48601000704" and "code" in sent["text"].lower()
    with db() as session:
        point = session.scalars(select(ContactPoint)).one()
        assert point.verified_at is None and point.subscriber.language == "en"
    # Again, now that it is registered and proven: its manage link, nothing new.
    with db.begin() as session:
        session.scalars(select(ContactPoint)).one().verified_at = utcnow()
    with db.begin() as session:
        again = hold_sign_up(session=session, request=request)
    assert sign_up_task.apply(args=[again.id]).get(timeout=30)["notices"] == 1
    assert "/my/" in sandbox.messages("smsapi")[-1]["text"]
    assert len(sandbox.messages("smsapi")) == 2
    with db() as session:
        assert session.scalar(select(func.count()).select_from(ContactPoint)) == 1
        assert session.scalar(select(func.count()).select_from(PendingRequest)) == 0


def test_notice_ids_never_meet_delivery_ids() -> None:
    ids = {new_request_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert min(ids) >= 10**15 and max(ids) < 2**53


def test_erasure_forgets_what_waits_for_the_erased_addresses_and_sends_nothing(
    task_environment: Settings,
    sandbox: Sandbox,
    database_url: str,
    db: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = worker_on(database_url, monkeypatch)
    phone, other = "+48601000705", "+48601000706"
    with db.begin() as session:
        resident = add_resident(
            session,
            settings,
            contacts=[("sms", phone)],
            topics=["weather-warning"],
            districts=["*"],
        )
        [point] = resident.contact_points
        notice = queue_manage(
            session=session, settings=settings, point=point, language="pl", now=time.time()
        )
        reminder = hold_reminder(session=session, reminder=Reminder(Channel.SMS, phone, False))
        signed = SignUp(
            contacts=((Channel.EMAIL, "ewa@example.com"), (Channel.SMS, phone)),
            topics=("weather-warning",),
            districts=("*",),
            language="pl",
            wanted=(Channel.SMS,),
        )
        sign_up = hold_sign_up(session=session, request=signed)
        # Someone else's, which stays.
        kept = hold_reminder(session=session, reminder=Reminder(Channel.SMS, other, False))
    with db.begin() as session:
        erase_resident(session=session, subscriber_id=resident.id, actor="subscriber:test")
    with db() as session:
        left = session.execute(select(PendingRequest.id, PendingRequest.kind)).all()
    assert [(row.id, row.kind) for row in left] == [(kept.id, PendingKind.REMINDER)]
    # The messages already on their way find nothing to do.
    assert send_notice.apply(args=[notice.id]).get(timeout=30)["outcome"] is None
    assert send_reminder.apply(args=[reminder.id]).get(timeout=30)["notice"] is False
    assert sign_up_task.apply(args=[sign_up.id]).get(timeout=30)["notices"] == 0
    assert sandbox.messages("smsapi") == sandbox.messages("smtp") == []


def test_a_notice_to_an_address_erased_meanwhile_is_not_sent(
    task_environment: Settings,
    sandbox: Sandbox,
    database_url: str,
    db: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = worker_on(database_url, monkeypatch)
    with db.begin() as session:
        resident = add_resident(
            session,
            settings,
            contacts=[("sms", "+48601000707")],
            topics=["weather-warning"],
            districts=["*"],
        )
        [point] = resident.contact_points
        queued = queue_manage(
            session=session, settings=settings, point=point, language="pl", now=time.time()
        )
        # The address goes by another way than erasure (it is the address that is read
        # when the notice is sent, not a copy).
        point.address = None
    assert send_notice.apply(args=[queued.id]).get(timeout=30)["outcome"] is None
    assert sandbox.messages("smsapi") == []
    with db() as session:
        assert session.get(PendingRequest, queued.id) is None


def test_requests_nobody_took_are_dropped_after_an_hour(db: sessionmaker[Session]) -> None:
    with db.begin() as session:
        old = pending.hold(session=session, kind=PendingKind.REMINDER, payload={"contacts": []})
        new = pending.hold(session=session, kind=PendingKind.REMINDER, payload={"contacts": []})
        session.get_one(PendingRequest, old.id).created_at = utcnow() - timedelta(minutes=61)
    with db.begin() as session:
        assert pending.forget_stale(session=session, now=utcnow()) == 1
    with db() as session:
        assert session.scalars(select(PendingRequest.id)).all() == [new.id]


def test_beat_writes_a_checkpoint_to_the_log_that_verify_reads(
    task_environment: Settings,
    database_url: str,
    db: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The hourly checkpoint lands in the workers' log, outside the database; that log is
    what `audit verify --checkpoint` is given."""
    worker_on(database_url, monkeypatch)
    for number in range(3):
        with db.begin() as session:
            audit.record(
                session=session, actor="system:test", action="x", object_type="x", object_id=number
            )
    with caplog.at_level(logging.INFO, logger="tasks.jobs"):
        assert log_audit_checkpoint.apply().get(timeout=30) == {"seq": 3}
    [checkpoint] = verification.parse_checkpoints(caplog.text)
    assert checkpoint.seq == 3
    with db() as session:
        assert verification.verify_chain(session=session, checkpoints=[checkpoint]).intact
