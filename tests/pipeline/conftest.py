"""A real stack for the pipeline: PostgreSQL, Redis as the broker, the sandbox providers,
and a Celery worker (with beat) in a process of its own that tests may kill and restart."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from broadcaster.alerts import lifecycle
from broadcaster.alerts import services as alerts
from broadcaster.alerts.drafts import AlertDraft
from broadcaster.alerts.models import Alert
from broadcaster.db.engine import make_engine
from broadcaster.dispatch import progress
from broadcaster.dispatch.models import Delivery, DeliveryStatus
from broadcaster.settings import Settings, load_settings
from tasks.commands import all_in_one_worker, worker_command
from tests.channels.conftest import Sandbox
from tests.channels.conftest import sandbox as sandbox
from tests.channels.conftest import sandbox_server as sandbox_server
from tests.conftest import TEST_SECRET, Staff, _empty_postgres

REDIS_URL = os.environ.get("WSP_TEST_REDIS_URL", "redis://127.0.0.1:6379/9")
REDIS_START = [
    "redis-server",
    "--daemonize",
    "yes",
    "--bind",
    "127.0.0.1",
    "-::1",
    "--port",
    "6379",
    "--save",
    "",
    "--appendonly",
    "no",
    "--dir",
    "/var/lib/redis",
    "--logfile",
    "/var/log/redis/ci.log",
]
OPEN = (DeliveryStatus.PENDING.value, DeliveryStatus.SENDING.value)


def wait_until(
    predicate: Callable[[], bool], timeout: float, what: str, every: float = 0.25
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Worker:
    """`celery worker --beat` with the stack's settings (or another worker command);
    start, kill -9, start again."""

    def __init__(
        self,
        environment: dict[str, str],
        directory: Path,
        command: list[str] | None = None,
        label: str = "",
    ) -> None:
        self.environment = environment
        self.directory = directory
        self.command = command or all_in_one_worker(directory / "beat")
        self.label = label
        self.process: subprocess.Popen[bytes] | None = None
        self.log: Any = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        self.log = log = (self.directory / f"worker-{self.label}{self.starts}.log").open("wb")
        self.process = subprocess.Popen(
            self.command,
            env=self.environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Its own process group: killing the worker kills its beat child too.
            start_new_session=True,
        )

    def kill(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self.log.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)  # whatever of the group is left
        if self.log is not None:
            self.log.close()

    def logs(self) -> str:
        return "\n".join(
            p.read_text(errors="replace")[-3000:]
            for p in sorted(self.directory.glob("worker-*.log"))
        )


class Stack:
    def __init__(
        self,
        db: sessionmaker[Session],
        settings: Settings,
        sandbox: Sandbox,
        worker: Worker,
        staff: Staff,
    ) -> None:
        self.db = db
        self.settings = settings
        self.sandbox = sandbox
        self.worker = worker
        self.staff = staff
        self.others: list[Worker] = []

    def other_worker(self, queues: str, label: str, beat: bool = False, **settings: str) -> Worker:
        """Another worker process of the stack (stopped with it), for `queues` only, with
        `settings` (environment variables) over the stack's."""
        worker = Worker(
            {**self.worker.environment, **settings},
            self.worker.directory,
            worker_command(
                queues=queues,
                name=label,
                beat_schedule=self.worker.directory / f"beat-{label}" if beat else None,
            ),
            label=f"{label}-",
        )
        self.others.append(worker)
        worker.start()
        return worker

    def alert(self, **changes: Any) -> int:
        """Write and approve an alert (two people, as always); the sweeper takes it from there."""
        fields: dict[str, Any] = {
            "topic": "weather-warning",
            "whole_city": True,
            "severity": "Severe",
            "urgency": "Immediate",
            "channels": ["sms", "push", "email"],
            "contents": {"pl": ("Burza", "Silne burze z gradem od 18:00.")},
            "expires_at": datetime.now(UTC) + timedelta(hours=2),
        }
        fields.update(changes)
        with self.db.begin() as session:
            alert = alerts.create_alert(
                session=session,
                settings=self.settings,
                author=self.staff.author,
                draft=AlertDraft(**fields),
            )
            lifecycle.submit_alert(
                session=session, settings=self.settings, actor=self.staff.author, alert_id=alert.id
            )
            alert_id = alert.id
        with self.db.begin() as session:
            lifecycle.approve_alert(
                session=session,
                settings=self.settings,
                approver=self.staff.approver,
                alert_id=alert_id,
            )
        return alert_id

    def progress(self, alert_id: int) -> dict[str, dict[str, int]]:
        with self.db() as session:
            return progress.read(session, alert_id)

    def open_count(self, alert_id: int) -> int:
        return sum(n for by in self.progress(alert_id).values() for s, n in by.items() if s in OPEN)

    def total(self, alert_id: int) -> int:
        return sum(n for by in self.progress(alert_id).values() for n in by.values())

    def rows(self, alert_id: int) -> dict[str, int]:
        """Counted from the rows themselves, to check the counters."""
        with self.db() as session:
            return {
                status.value: count
                for status, count in session.execute(
                    select(Delivery.status, func.count())
                    .where(Delivery.alert_id == alert_id)
                    .group_by(Delivery.status)
                ).all()
            }

    def status(self, alert_id: int) -> str:
        with self.db() as session:
            return str(session.scalar(select(Alert.status).where(Alert.id == alert_id)))

    def wait_all_final(self, alert_id: int, timeout: float = 180) -> None:
        try:
            wait_until(
                lambda: self.total(alert_id) > 0 and self.open_count(alert_id) == 0,
                timeout,
                f"every delivery of alert {alert_id} to end",
            )
        except AssertionError as error:
            raise AssertionError(
                f"{error}: counters {self.progress(alert_id)}, rows {self.rows(alert_id)}, "
                f"worker log:\n{self.worker.logs()}"
            ) from None


@pytest.fixture
def database_url(postgres_url: str) -> str:
    """The pipeline runs on PostgreSQL only (the worker is another process)."""
    engine = make_engine(postgres_url)
    _empty_postgres(engine)
    engine.dispose()
    return postgres_url


@pytest.fixture
def redis_broker() -> Iterator[str]:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError:
        subprocess.run(REDIS_START, check=True)
        wait_until(lambda: _pings(client), 20, "Redis")
    client.flushdb()
    yield REDIS_URL
    if _pings(client):
        client.flushdb()


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


@pytest.fixture
def stack(
    database_url: str,
    redis_broker: str,
    sandbox: Sandbox,
    staff: Staff,
    tmp_path: Path,
    db: sessionmaker[Session],
) -> Iterator[Stack]:
    postgres_url = database_url
    environment = {
        **os.environ,
        **sandbox.endpoints.environment(),
        "DATABASE_URL": postgres_url,
        "BROKER_URL": redis_broker,
        "WSP_REDIS_URL": redis_broker,
        "WSP_SECRET_KEY": TEST_SECRET,
        "WSP_DATA_DIR": str(tmp_path),
        "WSP_ENV": "test",
        "WSP_SWEEP_SECONDS": "0.5",
        "WSP_CLAIM_LEASE_SECONDS": "4",
        "WSP_REQUEUE_SECONDS": "5",
        "WSP_RETRY_BASE_SECONDS": "0.5",
        "WSP_RETRY_MAX_SECONDS": "4",
    }
    settings = load_settings(
        {k: v for k, v in environment.items() if k.startswith(("WSP_", "DATABASE", "BROKER"))}
    )
    worker = Worker(environment, tmp_path)
    worker.start()
    built = Stack(db, settings, sandbox, worker, staff)
    yield built
    for other in built.others:
        other.stop()
    worker.stop()
