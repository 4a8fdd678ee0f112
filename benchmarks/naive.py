"""The design most projects start with: one Celery task per recipient, one provider call
per message.

A baseline for the benchmark, written the way a typical Celery + SQLAlchemy project would
write it - neither sabotaged nor tuned. Its own Celery app on queue "naive" (`acks_late`,
prefetch 1, the settings a careful project picks so a crashed worker's task runs again);
`send_one(delivery_id)` opens a session, loads the delivery, its contact point and alert
through the ORM, renders the SMS, makes one `smsapi-client` call for that one number and
marks the row sent in its own commit. What it leaves out is what the pipeline adds:
batching numbers into one request, bulk claims and outcome writes, shared rate limits.

It reads the project's own settings (WSP_SMSAPI_URL, WSP_SMSAPI_TOKEN, WSP_SMSAPI_SENDER,
...), so the sandbox's environment points it at the sandbox; the broker and the database
come from BENCH_NAIVE_BROKER and BENCH_NAIVE_DATABASE_URL.

`run_naive_sms` enqueues one task per delivery before any worker runs, so enqueueing is
timed apart (`enqueue_seconds`) and not counted as sending time; then it starts a real
prefork worker and polls the database until every row is sent.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from functools import cache
from pathlib import Path
from typing import Any

import requests
from celery import Celery
from smsapi.client import Client
from smsapi.exception import SmsApiException
from sqlalchemy import BigInteger, ColumnElement, any_, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session, sessionmaker

from broadcaster.alerts.messages import alert_text
from broadcaster.alerts.models import Alert
from broadcaster.db.engine import make_engine, make_sessionmaker, utcnow
from broadcaster.dispatch.models import Delivery, DeliveryStatus
from broadcaster.settings import get_settings
from subscribers.models import ContactPoint
from templates.renderer import render_sms

QUEUE = "naive"
DEFAULT_BROKER = "redis://127.0.0.1:6379/14"
DEFAULT_DATABASE = "postgresql://postgres@127.0.0.1:5432/wsp_baseline"
REPOSITORY = Path(__file__).resolve().parent.parent

app = Celery("naive", broker=os.environ.get("BENCH_NAIVE_BROKER", DEFAULT_BROKER))
app.conf.update(
    task_default_queue=QUEUE,
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    task_ignore_result=True,
    task_serializer="json",
    accept_content=["json"],
    broker_connection_retry_on_startup=True,
)


@cache
def _sessions() -> sessionmaker[Session]:
    """One engine per worker process, built on first use (after the prefork fork, so no
    pooled connection is shared between children)."""
    engine = make_engine(os.environ.get("BENCH_NAIVE_DATABASE_URL", DEFAULT_DATABASE))
    return make_sessionmaker(engine, secret_key=get_settings().secret_key)


@cache
def _smsapi() -> Client:
    """smsapi-client pointed at the configured SMSAPI; only the base `Client` takes another
    domain, and the domain needs its trailing slash (the library appends `sms.do`)."""
    settings = get_settings()
    return Client(settings.smsapi_url, access_token=settings.smsapi_token)


@app.task(  # type: ignore[untyped-decorator]  # Celery is untyped
    name="naive.send_one",
    acks_late=True,
    autoretry_for=(SmsApiException, requests.RequestException),
    retry_backoff=True,
    max_retries=5,
)
def send_one(delivery_id: int) -> None:
    """Send one delivery's SMS and mark it sent; a row no longer pending (a task delivered
    twice under acks_late) is left alone."""
    settings = get_settings()
    with _sessions()() as session:
        delivery = session.get_one(Delivery, delivery_id)
        if delivery.status is not DeliveryStatus.PENDING:
            return
        contact = session.get_one(ContactPoint, delivery.contact_point_id)
        alert = session.get_one(Alert, delivery.alert_id)
        if contact.address is None:
            return
        sms = render_sms(alert_text(alert, delivery.language))
        answer = _smsapi().sms.send(
            # SMSAPI's number form: digits only, country code first.
            to=contact.address.lstrip("+"),
            message=sms.text,
            from_=settings.smsapi_sender,
            max_parts=settings.sms_max_parts,
            encoding="utf-8",
        )
        delivery.status = DeliveryStatus.SENT
        delivery.attempts += 1
        delivery.sent_at = utcnow()
        delivery.provider_id = next((str(item.id) for item in answer), None)
        session.commit()


def _worker_command(concurrency: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "benchmarks.naive",
        "worker",
        "--pool=prefork",
        "-c",
        str(concurrency),
        "-Q",
        QUEUE,
        "--loglevel=WARNING",
        "--without-heartbeat",
        "--without-gossip",
        "--without-mingle",
    ]


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Warm shutdown first; the worker runs in its own process group, so a stuck pool child
    goes with it."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def run_naive_sms(
    database_url: str,
    broker_url: str,
    environment: dict[str, str],
    alert_id: int,
    limit: int,
    concurrency: int = 2,
    timeout: float = 600,
) -> dict[str, Any]:
    """Send the first `limit` pending SMS deliveries of a planned alert (on PostgreSQL), one
    task each, with a real prefork worker of `concurrency` processes; returns the throughput.

    The clock runs from the first row's `sent_at` to the last one's (database time, written
    by the tasks): worker start-up and enqueueing are outside it. The first row's own send
    happened before that window opened, so `per_second` counts the `messages - 1` sends
    inside it. `wall_seconds` is worker start to the poll that saw every row sent, start-up
    included, for reference. The sandbox's SMSAPI counters are reset first and must show
    every message accepted once (returned under "sandbox").
    """
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine, secret_key=get_settings().secret_key)
    try:
        with sessions() as session:
            ids = list(
                session.scalars(
                    select(Delivery.id)
                    # An erased contact point has no number to send to.
                    .join(ContactPoint, ContactPoint.id == Delivery.contact_point_id)
                    .where(
                        Delivery.alert_id == alert_id,
                        Delivery.channel == "sms",
                        Delivery.status == DeliveryStatus.PENDING,
                        ContactPoint.address.is_not(None),
                    )
                    .order_by(Delivery.id)
                    .limit(limit)
                )
            )
        if len(ids) < 2:
            raise ValueError(f"alert {alert_id} has {len(ids)} pending SMS deliveries; need >= 2")

        control = f"{environment['WSP_SMSAPI_URL']}_sandbox/smsapi"
        requests.post(f"{control}/reset", timeout=10).raise_for_status()
        enqueue_seconds = _enqueue(broker_url, ids)
        log_fd, log_name = tempfile.mkstemp(prefix="naive-worker-", suffix=".log")
        log_path = Path(log_name)
        worker_env = {
            **os.environ,
            **environment,
            "BENCH_NAIVE_BROKER": broker_url,
            "BENCH_NAIVE_DATABASE_URL": database_url,
            # Celery's command line takes BROKER_URL from the environment over the app's
            # own broker: the caller's may point at another Redis database.
            "BROKER_URL": broker_url,
        }
        with os.fdopen(log_fd, "wb") as log:
            started = time.perf_counter()
            process = subprocess.Popen(  # noqa: S603 - our own worker command
                _worker_command(concurrency),
                cwd=REPOSITORY,
                env=worker_env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                sent = _wait_until_sent(sessions, ids, process, started + timeout)
                wall_seconds = time.perf_counter() - started
            finally:
                _stop(process)
        if sent < len(ids):
            tail = log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(
                f"{sent} of {len(ids)} sent before the deadline; worker log ({log_path}):\n{tail}"
            )
        log_path.unlink()

        with sessions() as session:
            first, last = session.execute(
                select(func.min(Delivery.sent_at), func.max(Delivery.sent_at)).where(_among(ids))
            ).one()
    finally:
        engine.dispose()
    counts = requests.get(f"{control}/counts", timeout=10).json()
    if counts["accepted"] != len(ids) or counts["duplicates"]:
        raise RuntimeError(f"sent {len(ids)} SMS, the sandbox counted {counts}")
    if first is None or last is None:
        raise RuntimeError("the sent rows have no sent_at")
    seconds = (last - first).total_seconds()
    return {
        "messages": len(ids),
        "seconds": seconds,
        "per_second": (len(ids) - 1) / seconds,
        "clock": "min(sent_at) to max(sent_at); per_second = (messages - 1) / seconds",
        "enqueue_seconds": enqueue_seconds,
        "wall_seconds": wall_seconds,
        "concurrency": concurrency,
        "sandbox": counts,
    }


def _enqueue(broker_url: str, ids: list[int]) -> float:
    """One `send_one` message per delivery on the bench's broker (stale messages of an
    earlier run purged first); the seconds it took."""
    with app.connection_for_write(broker_url) as connection:
        connection.default_channel.queue_purge(QUEUE)
        with connection.Producer() as producer:
            started = time.perf_counter()
            for delivery_id in ids:
                send_one.apply_async((delivery_id,), producer=producer)
            return time.perf_counter() - started


def _among(ids: list[int]) -> ColumnElement[bool]:
    """`Delivery.id = ANY(:ids)`: one array parameter, however many ids (an IN list stops
    at 65,535 parameters)."""
    return Delivery.id == any_(bindparam("ids", ids, type_=ARRAY(BigInteger)))


def _wait_until_sent(
    sessions: sessionmaker[Session],
    ids: list[int],
    process: subprocess.Popen[bytes],
    deadline: float,
) -> int:
    """Poll until every row in `ids` is sent, the worker dies or the deadline passes."""
    sent = 0
    while time.perf_counter() < deadline and process.poll() is None:
        with sessions() as session:
            sent = (
                session.scalar(
                    select(func.count()).where(_among(ids), Delivery.status == DeliveryStatus.SENT)
                )
                or 0
            )
        if sent >= len(ids):
            break
        time.sleep(0.2)
    return sent
