"""The processes of the benchmark's stack: Celery workers started as in production (a
planner with beat, a pool of senders), and a sampler of every process's memory.

Memory is read as PSS (proportional set size, /proc/<pid>/smaps_rollup): pages shared
between processes (PostgreSQL's shared buffers, a prefork pool's copy-on-write pages) are
split between them instead of counted once per process, so the sums are honest.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

MIB = 1024 * 1024


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                # The command name may hold spaces: the parent pid follows its closing ")".
                parent = int(stat.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        tree.setdefault(parent, []).append(int(entry))
    return tree


def process_tree(root: int) -> list[int]:
    """`root` and all its descendants."""
    tree, found, todo = _children(), [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(tree.get(pid, []))
    return found


def processes_named(*names: str) -> list[int]:
    """Every process whose command name starts with one of `names` (redis-server, postgres)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                comm = Path(f"/proc/{entry}/comm").read_text().strip()
            except OSError:
                continue
            if comm.startswith(names):
                found.append(int(entry))
    return found


TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User and system CPU time the process has used so far, with that of its children
    that have ended (a PostgreSQL backend or an autovacuum worker that came and went)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
        return sum(int(fields[i]) for i in (11, 12, 13, 14)) / TICKS
    except (OSError, IndexError, ValueError):
        return 0.0


def pss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


@dataclass
class MemorySampler:
    """Samples the PSS of named groups of processes twice a second, keeping each group's
    peak (the sum over its processes at one moment) and the peak of the stack's total."""

    groups: dict[str, Callable[[], list[int]]]
    # Groups that stand for the outside world (the sandbox providers): reported, not summed.
    outside: frozenset[str] = frozenset()
    interval: float = 0.5
    peaks: dict[str, int] = field(default_factory=dict)
    process_peaks: dict[str, int] = field(default_factory=dict)
    total_peak: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def sample(self) -> None:
        total = 0
        for name, pids in self.groups.items():
            sizes = [pss_bytes(pid) for pid in pids()]
            size = sum(sizes)
            self.peaks[name] = max(self.peaks.get(name, 0), size)
            self.process_peaks[name] = max(self.process_peaks.get(name, 0), max(sizes, default=0))
            if name not in self.outside:
                total += size
        self.total_peak = max(self.total_peak, total)

    def cpu(self) -> dict[str, float]:
        """CPU seconds used so far by each group's current processes."""
        return {name: sum(cpu_seconds(pid) for pid in pids()) for name, pids in self.groups.items()}

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> MemorySampler:
        self._thread = threading.Thread(target=self._run, name="memory", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def report(self) -> dict[str, object]:
        return {
            "groups_peak_mib": {name: round(size / MIB, 1) for name, size in self.peaks.items()},
            "largest_process_mib": {
                name: round(size / MIB, 1) for name, size in self.process_peaks.items()
            },
            "stack_total_peak_mib": round(self.total_peak / MIB, 1),
            "not_in_total": sorted(self.outside),
        }


@contextlib.contextmanager
def workers(
    commands: dict[str, list[str]], environment: dict[str, str], directory: Path
) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    """Start one process per command (logs in `directory`); stop them all on the way out."""
    started: dict[str, subprocess.Popen[bytes]] = {}
    logs = []
    try:
        for name, argv in commands.items():
            log = (directory / f"{name}.log").open("wb")
            logs.append(log)
            started[name] = subprocess.Popen(  # noqa: S603 - our own workers
                argv, env=environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        yield started
    finally:
        for process in started.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for process in started.values():
            try:
                process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        for log in logs:
            log.close()
