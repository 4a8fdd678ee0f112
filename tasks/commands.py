"""Command lines for worker processes (kept apart from tasks.app, which builds the Celery
app from the settings as soon as it is imported)."""

from __future__ import annotations

import sys
from pathlib import Path

QUEUES = ("plan", "sms", "push", "email", "receipts")


def all_in_one_worker(schedule: Path) -> list[str]:
    """One worker process for every queue, with beat: the demo's and the tests' stack."""
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "tasks.app",
        "worker",
        "--beat",
        "--pool=solo",
        "-Q",
        ",".join(QUEUES),
        "--loglevel=INFO",
        "--without-heartbeat",
        "--without-gossip",
        "--without-mingle",
        "--schedule",
        str(schedule),
    ]
