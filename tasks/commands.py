"""Command lines for worker processes (kept apart from tasks.app, which builds the Celery
app from the settings as soon as it is imported)."""

from __future__ import annotations

import sys
from pathlib import Path

QUEUES = ("plan", "sms", "push", "email", "receipts", "notices")


def worker_command(
    *,
    queues: str,
    pool: str = "solo",
    concurrency: int = 1,
    name: str | None = None,
    beat_schedule: Path | None = None,
    loglevel: str = "INFO",
) -> list[str]:
    """A Celery worker for `queues` (comma-separated), with beat when given its schedule."""
    argv = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "tasks.app",
        "worker",
        f"--pool={pool}",
        f"--concurrency={concurrency}",
        "-Q",
        queues,
        f"--loglevel={loglevel}",
        "--without-heartbeat",
        "--without-gossip",
        "--without-mingle",
    ]
    if name is not None:
        argv.append(f"--hostname={name}@%h")
    if beat_schedule is not None:
        argv += ["--beat", "--schedule", str(beat_schedule)]
    return argv


def all_in_one_worker(schedule: Path) -> list[str]:
    """One worker process for every queue, with beat: the demo's and the tests' stack."""
    return worker_command(queues=",".join(QUEUES), beat_schedule=schedule)
