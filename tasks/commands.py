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


def beat_command(*, schedule: Path, loglevel: str = "INFO") -> list[str]:
    """Celery beat on its own, with its schedule file: a process that can be watched
    apart from the worker (beat embedded in a worker dies unseen by its parent)."""
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "tasks.app",
        "beat",
        "--schedule",
        str(schedule),
        f"--loglevel={loglevel}",
    ]


def stack_commands(schedule: Path) -> tuple[list[str], list[str]]:
    """The stack's worker (every queue) and its beat, as two processes."""
    return worker_command(queues=",".join(QUEUES)), beat_command(schedule=schedule)


def all_in_one_worker(schedule: Path) -> list[str]:
    """One worker process for every queue, with beat embedded: the pipeline tests' workers
    (the demo's stack runs beat on its own, `stack_commands`)."""
    return worker_command(queues=",".join(QUEUES), beat_schedule=schedule)
