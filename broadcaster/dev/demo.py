"""`broadcaster demo`: the whole pipeline on embedded defaults, with a report.

A fresh SQLite database and a Celery broker on SQLite under the data folder (or whatever
DATABASE_URL and BROKER_URL say), the sandbox providers and the API on loopback, and one
worker process and beat (`broadcaster.dev.stack`). A synthetic population is seeded, an operator
writes a Polish weather warning for a few districts, a second person approves it, and the
worker fans it out; a progress bar follows the counters. The report gives every channel's
deliveries per status and the sandbox's own count of what arrived, and the demo fails
(exit 1) if any targeted message is unaccounted for or the counts disagree.

Every wait is bounded: a worker or beat that exits, while starting or later, ends the demo
at once with StackError (its exit code and the end of its log), and so does an alert on
which nothing has moved for `stall` seconds (default two minutes), with both logs' ends.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from broadcaster.alerts import lifecycle
from broadcaster.alerts import services as alerts
from broadcaster.alerts.drafts import AlertDraft
from broadcaster.alerts.models import Alert, AlertStatus
from broadcaster.audit import verification
from broadcaster.dev import population
from broadcaster.dev.stack import Stack, StackError, running_stack
from broadcaster.dispatch import progress
from broadcaster.dispatch.models import Delivery, DeliveryStatus
from broadcaster.errors import InvalidInput, NotFound
from broadcaster.settings import Environment, Settings
from broadcaster.staff import operators
from broadcaster.staff.models import Operator

DEMO_DISTRICTS = ("mokotow", "ursynow", "wilanow", "srodmiescie")
DEMO_STAFF = (
    ("demo-operator", "operator", "Operator dyżurny"),
    ("demo-approver", "approver", "Kierownik zmiany"),
)
OPEN = (DeliveryStatus.PENDING.value, DeliveryStatus.SENDING.value)
PROVIDER_OF = {"sms": "smsapi", "push": "fcm", "email": "smtp"}
# Nothing moving on the alert (its status, its counters) for this long ends the demo.
STALL_SECONDS = 120
REPORTS_SECONDS = 30
POLL_SECONDS = 0.5


@dataclass
class DemoReport:
    database: str
    residents: int
    alert: dict[str, Any]
    deliveries: dict[str, dict[str, int]]
    sandbox: dict[str, int]
    receipts: dict[str, dict[str, int]]
    audit: str
    seconds: float
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "residents": self.residents,
            "alert": self.alert,
            "deliveries": self.deliveries,
            "sandbox_accepted": self.sandbox,
            "receipts": self.receipts,
            "audit": self.audit,
            "seconds": round(self.seconds, 1),
            "ok": self.ok,
            "problems": self.problems,
        }


def demo_urls(settings: Settings) -> tuple[str, str, list[Path]]:
    """The demo's own fresh SQLite files, unless DATABASE_URL / BROKER_URL point elsewhere."""
    directory = settings.data_dir.resolve()
    fresh: list[Path] = []
    database = settings.database_url
    if database == f"sqlite:///{settings.data_dir}/broadcaster.db":
        fresh.append(directory / "demo.db")
        database = f"sqlite:///{fresh[-1]}"
    broker = settings.broker_url
    if broker == f"sqla+sqlite:///{settings.data_dir}/broker.db":
        fresh.append(directory / "demo-broker.db")
        broker = f"sqla+sqlite:///{fresh[-1]}"
    return database, broker, fresh


def _staff(session: Session) -> list[Operator]:
    people = []
    for username, role, name in DEMO_STAFF:
        try:
            people.append(operators.get_operator(session=session, username=username))
        except NotFound:
            people.append(
                operators.create_operator(
                    session=session,
                    username=username,
                    role=role,
                    display_name=name,
                    created_by="system:demo",
                )
            )
    return people


def weather_warning(now: datetime) -> AlertDraft:
    return AlertDraft(
        topic="weather-warning",
        districts=DEMO_DISTRICTS,
        severity="Severe",
        urgency="Expected",
        channels=["sms", "push", "email"],
        contents={
            "pl": (
                "Ostrzeżenie IMGW: silne burze z gradem",
                "Dziś od 17:00 do 23:00 silne burze z gradem i porywami wiatru do 90 km/h. "
                "Zabezpiecz balkony, nie parkuj pod drzewami. Telefon alarmowy: 112.",
            ),
            "en": (
                "Weather warning: severe thunderstorms with hail",
                "Today 17:00-23:00 severe thunderstorms, hail and gusts up to 90 km/h. "
                "Secure balconies, do not park under trees. Emergency: 112.",
            ),
            "uk": (
                "Метеопопередження: сильні грози з градом",
                "Сьогодні з 17:00 до 23:00 сильні грози з градом і поривами вітру до 90 км/год. "
                "Екстрений номер: 112.",
            ),
        },
        expires_at=now + timedelta(hours=8),
    )


def _open_count(counts: dict[str, dict[str, int]]) -> int:
    return sum(
        n for by_status in counts.values() for status, n in by_status.items() if status in OPEN
    )


def run_demo(
    *,
    settings: Settings,
    residents: int,
    timeout: float = 600,
    stall: float = STALL_SECONDS,
    progress_bar: Callable[[int, int], None] | None = None,
    seeding: Callable[[int], None] | None = None,
    worker_command: Sequence[str] | None = None,
    beat_command: Sequence[str] | None = None,
) -> DemoReport:
    """Run the demo and report; `worker_command` and `beat_command` replace the stack's
    own (`broadcaster.dev.stack.running_stack`). Raises StackError when a part of the stack
    does not start or stops, or when nothing moves on the alert for `stall` seconds."""
    if settings.env is Environment.PRODUCTION:
        raise InvalidInput("WSP_ENV", "the demo adds synthetic residents: never in production")
    started = time.monotonic()
    database, broker, fresh = demo_urls(settings)
    for path in fresh:
        for leftover in (path, *path.parent.glob(path.name + "-*")):
            leftover.unlink(missing_ok=True)

    def seed(session: Session) -> None:
        population.seed_population(session=session, count=residents, progress=seeding)

    with running_stack(
        directory=settings.data_dir,
        variables={"DATABASE_URL": database, "BROKER_URL": broker},
        prepare=seed,
        name="demo",
        worker_command=worker_command,
        beat_command=beat_command,
    ) as stack:
        sessions = stack.sessions
        alert_id = _write_and_approve(stack.settings, sessions)
        counts = _follow(stack, alert_id, timeout, stall, progress_bar)
        _wait_for_reports(stack, alert_id, timeout=REPORTS_SECONDS)
        with sessions() as session:
            counts = progress.read(session, alert_id)
            alert = session.get_one(Alert, alert_id)
            view = alerts.describe_alert(alert)
            view["title_pl"] = view.pop("contents")["pl"]["title"]
            verdict = verification.verify_chain(session=session)
            tallies = progress.receipts(session)
            left = dict(
                session.execute(
                    select(Delivery.channel, func.count())
                    .where(Delivery.alert_id == alert_id, Delivery.sent_at.is_not(None))
                    .group_by(Delivery.channel)
                ).all()
            )
        accepted = {
            channel: int(stack.sandbox.recorder(PROVIDER_OF[channel]).counts()["accepted"])
            for channel in ("sms", "push", "email")
        }
    report = DemoReport(
        database=database,
        residents=residents,
        alert=view,
        deliveries=counts,
        sandbox=accepted,
        receipts=tallies,
        audit=verdict.describe(),
        seconds=time.monotonic() - started,
    )
    _check(report, verdict.intact, left)
    return report


def _write_and_approve(settings: Settings, sessions: sessionmaker[Session]) -> int:
    with sessions.begin() as session:
        author, _ = _staff(session)
        alert = alerts.create_alert(
            session=session,
            settings=settings,
            author=author,
            draft=weather_warning(datetime.now(UTC)),
        )
        lifecycle.submit_alert(session=session, settings=settings, actor=author, alert_id=alert.id)
        alert_id = alert.id
    with sessions.begin() as session:  # a second person, in a transaction of their own
        _, approver = _staff(session)
        lifecycle.approve_alert(
            session=session, settings=settings, approver=approver, alert_id=alert_id
        )
    return alert_id


def _follow(
    stack: Stack,
    alert_id: int,
    timeout: float,
    stall: float,
    progress_bar: Callable[[int, int], None] | None,
) -> dict[str, dict[str, int]]:
    started = time.monotonic()
    deadline = started + timeout
    counts: dict[str, dict[str, int]] = {}
    seen: tuple[object, ...] = ()
    moved = started
    while time.monotonic() < deadline:
        stack.check()
        with stack.sessions() as session:
            status = session.scalar(select(Alert.status).where(Alert.id == alert_id))
            counts = progress.read(session, alert_id)
        total = sum(n for by_status in counts.values() for n in by_status.values())
        if progress_bar is not None and total:
            progress_bar(total - _open_count(counts), total)
        # Done only once the sweeper has seen every message final and closed the alert.
        if status in (AlertStatus.DONE, AlertStatus.CANCELLED, AlertStatus.EXPIRED):
            return counts
        now = (status, sorted((c, sorted(s.items())) for c, s in counts.items()))
        if now != seen:
            seen, moved = now, time.monotonic()
        elif time.monotonic() - moved > stall:
            raise StackError(
                f"nothing moved on alert {alert_id} for {stall:.0f} s (status {status}, "
                f"{total} deliveries, {_open_count(counts)} of them open)\n{stack.logs()}"
            )
        time.sleep(POLL_SECONDS)
    return counts


def _wait_for_reports(stack: Stack, alert_id: int, timeout: float) -> None:
    """SMS reports come back a moment after the sends: give them time to land."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stack.check()
        with stack.sessions() as session:
            sms = progress.read(session, alert_id).get("sms", {})
        if not sms.get(DeliveryStatus.SENT.value):
            return
        time.sleep(POLL_SECONDS)


def _check(report: DemoReport, audit_intact: bool, left: dict[str, int]) -> None:
    """Every targeted message final, and each channel's sends equal to what arrived."""
    for channel, by_status in sorted(report.deliveries.items()):
        left_open = sum(n for status, n in by_status.items() if status in OPEN)
        if left_open:
            report.problems.append(f"{channel}: {left_open} deliveries never reached a final state")
        if left.get(channel, 0) != report.sandbox.get(channel, 0):
            report.problems.append(
                f"{channel}: {left.get(channel, 0)} sent but the sandbox "
                f"accepted {report.sandbox.get(channel, 0)}"
            )
    if not report.deliveries:
        report.problems.append("the alert reached nobody")
    if not audit_intact:
        report.problems.append(f"audit trail: {report.audit}")
