"""`broadcaster demo`: the whole pipeline on embedded defaults, with a report.

A fresh SQLite database and a Celery broker on SQLite under the data folder (or whatever
DATABASE_URL and BROKER_URL say), the sandbox providers and the receipt endpoint on
loopback, and one worker process with beat. A synthetic population is seeded, an operator
writes a Polish weather warning for a few districts, a second person approves it, and the
worker fans it out; a progress bar follows the counters. The report gives every channel's
deliveries per status and the sandbox's own count of what arrived, and the demo fails
(exit 1) if any targeted message is unaccounted for or the counts disagree.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import uvicorn
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from broadcaster import alerts, audit, operators, population, progress, schema
from broadcaster.alerts import AlertDraft
from broadcaster.api.app import create_app
from broadcaster.db import make_engine, make_sessionmaker
from broadcaster.errors import InvalidInput, NotFound
from broadcaster.models import Alert, AlertStatus, Delivery, DeliveryStatus, Operator
from broadcaster.settings import Environment, Settings, get_settings
from channels.sandbox.server import SandboxServer, free_port
from tasks.commands import all_in_one_worker

DEMO_DISTRICTS = ("mokotow", "ursynow", "wilanow", "srodmiescie")
DEMO_STAFF = (
    ("demo-operator", "operator", "Operator dyżurny"),
    ("demo-approver", "approver", "Kierownik zmiany"),
)
OPEN = (DeliveryStatus.PENDING.value, DeliveryStatus.SENDING.value)
PROVIDER_OF = {"sms": "smsapi", "push": "fcm", "email": "smtp"}


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


@contextlib.contextmanager
def _api(port: int, settings: Settings) -> Iterator[None]:
    # A Celery client of the demo's own broker: the process-wide app of `tasks` may have
    # been made earlier in this process, for another broker.
    from tasks.app import make_app

    celery = make_app()

    def publish(reports: list[dict[str, str]]) -> None:
        celery.send_task("tasks.jobs.record_smsapi_reports", args=[reports], queue="receipts")

    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, publish=publish),
            host="127.0.0.1",
            port=port,
            log_level="warning",
        )
    )
    thread = threading.Thread(target=server.run, name="api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextlib.contextmanager
def _worker(environment: dict[str, str], directory: Path) -> Iterator[subprocess.Popen[bytes]]:
    log = (directory / "demo-worker.log").open("wb")
    process = subprocess.Popen(  # noqa: S603 - our own worker
        all_in_one_worker(directory / "demo-beat"),
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def _open_count(counts: dict[str, dict[str, int]]) -> int:
    return sum(
        n for by_status in counts.values() for status, n in by_status.items() if status in OPEN
    )


def run_demo(
    *,
    settings: Settings,
    residents: int,
    timeout: float = 600,
    progress_bar: Callable[[int, int], None] | None = None,
    seeding: Callable[[int], None] | None = None,
) -> DemoReport:
    if settings.env is Environment.PRODUCTION:
        raise InvalidInput("WSP_ENV", "the demo adds synthetic residents: never in production")
    started = time.monotonic()
    database, broker, fresh = demo_urls(settings)
    directory = settings.data_dir.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    for path in fresh:
        for leftover in (path, *path.parent.glob(path.name + "-*")):
            leftover.unlink(missing_ok=True)
    engine = make_engine(database)
    sessions = make_sessionmaker(engine, secret_key=settings.secret_key)
    api_port = free_port()
    sandbox = SandboxServer(directory=directory / "sandbox")
    endpoints = sandbox.start_in_thread()
    # The workers ask SMSAPI (the sandbox) to report to the demo's API, as in production.
    ours = {
        "DATABASE_URL": database,
        "BROKER_URL": broker,
        "WSP_PUBLIC_BASE_URL": f"http://127.0.0.1:{api_port}",
        "WSP_SMSAPI_CALLBACK_SECRET": secrets.token_urlsafe(24),
    }
    environment = {
        **os.environ,
        **endpoints.environment(),
        **ours,
        "WSP_DATA_DIR": str(directory),
        "WSP_SWEEP_SECONDS": "1",
    }
    saved = {name: os.environ.get(name) for name in ours}
    os.environ.update(ours)
    get_settings.cache_clear()  # the receipt endpoint publishes with these
    try:
        schema.upgrade(engine)
        with sessions.begin() as session:
            population.seed_population(session=session, count=residents, progress=seeding)
        with _api(api_port, get_settings()), _worker(environment, directory):
            alert_id = _write_and_approve(settings, sessions)
            counts = _follow(sessions, alert_id, timeout, progress_bar)
            _wait_for_reports(sessions, alert_id, timeout=30)
            with sessions() as session:
                counts = progress.read(session, alert_id)
                alert = session.get_one(Alert, alert_id)
                view = alerts.describe_alert(alert)
                view["title_pl"] = view.pop("contents")["pl"]["title"]
                verdict = audit.verify_chain(session=session)
                tallies = progress.receipts(session)
                left = dict(
                    session.execute(
                        select(Delivery.channel, func.count())
                        .where(Delivery.alert_id == alert_id, Delivery.sent_at.is_not(None))
                        .group_by(Delivery.channel)
                    ).all()
                )
            accepted = {
                channel: int(sandbox.recorder(PROVIDER_OF[channel]).counts()["accepted"])
                for channel in ("sms", "push", "email")
            }
    finally:
        sandbox.stop_thread()
        engine.dispose()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
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
        alerts.submit_alert(session=session, actor=author, alert_id=alert.id)
        alert_id = alert.id
    with sessions.begin() as session:  # a second person, in a transaction of their own
        _, approver = _staff(session)
        alerts.approve_alert(session=session, approver=approver, alert_id=alert_id)
    return alert_id


def _follow(
    sessions: sessionmaker[Session],
    alert_id: int,
    timeout: float,
    progress_bar: Callable[[int, int], None] | None,
) -> dict[str, dict[str, int]]:
    deadline = time.monotonic() + timeout
    counts: dict[str, dict[str, int]] = {}
    while time.monotonic() < deadline:
        with sessions() as session:
            status = session.scalar(select(Alert.status).where(Alert.id == alert_id))
            counts = progress.read(session, alert_id)
        total = sum(n for by_status in counts.values() for n in by_status.values())
        if progress_bar is not None and total:
            progress_bar(total - _open_count(counts), total)
        # Done only once the sweeper has seen every message final and closed the alert.
        if status in (AlertStatus.DONE, AlertStatus.CANCELLED, AlertStatus.EXPIRED):
            return counts
        time.sleep(0.5)
    return counts


def _wait_for_reports(sessions: sessionmaker[Session], alert_id: int, timeout: float) -> None:
    """SMS reports come back a moment after the sends: give them time to land."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with sessions() as session:
            sms = progress.read(session, alert_id).get("sms", {})
        if not sms.get(DeliveryStatus.SENT.value):
            return
        time.sleep(0.5)


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
