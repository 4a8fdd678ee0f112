"""The Celery application and its configuration.

Queues: `plan` (freezing audiences), one per channel (`sms`, `push`, `email`) so each can
have its own workers, and `receipts`. Severe and extreme alerts' batches carry a higher
priority and are taken first on Redis (priority sub-queues, checked highest first).

Task messages carry ids only: what a resident's task needs (an address, a code) waits in
the database (`subscribers.pending`), and the embedded broker deletes each message it
delivers (`tasks.broker`) instead of keeping it.

Reliability: tasks are acknowledged late and rejected (so redelivered) when their worker
process dies; arguments are ids and plain dicts, serialised as JSON only; a batch task
never runs long (retries are rescheduled through the database, not with countdowns, which
Redis would redeliver after the visibility timeout), so the visibility timeout is well
above any task, and unacknowledged messages are restored quickly.
"""

from __future__ import annotations

from celery import Celery
from kombu.entity import Exchange, Queue

from broadcaster.settings import Settings, get_settings
from tasks.commands import QUEUES

URGENT_PRIORITY = 0  # Redis: 0 is taken first
NORMAL_PRIORITY = 6
EMBEDDED_PREFIX = "sqla+"
EMBEDDED_TRANSPORT = "tasks.broker:Transport"
# How often beat drops the pending requests no worker took (subscribers.pending).
STALE_REQUESTS_SECONDS = 600


def make_app(settings: Settings | None = None) -> Celery:
    """The app for `settings` (default: this process's); a client of another broker than
    the process-wide `app` (the demo's, a test's stack) makes one of its own."""
    settings = settings or get_settings()
    broker, transport = settings.broker_url, None
    if broker.startswith(EMBEDDED_PREFIX):
        # kombu takes a transport named in the URL only from its own list: ours, which
        # deletes what it delivers, is named apart and given the database URL alone.
        broker, transport = broker.removeprefix(EMBEDDED_PREFIX), EMBEDDED_TRANSPORT
    app = Celery("broadcaster", broker=broker, include=["tasks.jobs"])
    # The SQLAlchemy transport hands its options to create_engine: only Redis takes these.
    transport_options: dict[str, object] = {}
    if settings.broker_is_redis:
        transport_options = {
            "visibility_timeout": 600,
            "priority_steps": list(range(10)),
            "sep": ":",
            "queue_order_strategy": "priority",
            "unacked_restore_interval": 5,
        }
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,
        # A worker process reserves no task beyond the one it runs (Redis only): an urgent
        # batch published meanwhile is the next task taken, not behind one reserved
        # earlier per process (an extreme alert waited up to two routine batches more).
        worker_disable_prefetch=settings.broker_is_redis,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        # No result backend: nothing a task returns is stored anywhere.
        task_ignore_result=True,
        broker_transport=transport,
        # One exchange and routing key per queue: a shared key would copy every message
        # into every queue bound with it.
        task_queues=[Queue(name, Exchange(name), routing_key=name) for name in QUEUES],
        task_default_queue="plan",
        task_default_priority=NORMAL_PRIORITY,
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        beat_schedule={
            "sweep": {
                "task": "tasks.jobs.sweep",
                "schedule": settings.sweep_seconds,
                "options": {
                    "queue": "plan",
                    "priority": URGENT_PRIORITY,
                    "expires": settings.sweep_seconds * 2,
                },
            },
            "audit-checkpoint": {
                "task": "tasks.jobs.log_audit_checkpoint",
                "schedule": settings.audit_checkpoint_seconds,
                "options": {"queue": "plan", "expires": settings.audit_checkpoint_seconds},
            },
            "forget-stale-requests": {
                "task": "tasks.jobs.forget_stale_requests",
                "schedule": STALE_REQUESTS_SECONDS,
                "options": {"queue": "notices", "expires": STALE_REQUESTS_SECONDS},
            },
        },
        timezone="UTC",
    )
    return app


app = make_app()
