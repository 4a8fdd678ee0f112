"""One owner per invariant, read from the source: only the state machine moves the
progress counters (planning sets the first count), and only the outbox writes batches."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("broadcaster", "subscribers", "channels", "templates", "tasks", "benchmarks")


def calls_of(pattern: str) -> set[str]:
    found = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if re.search(pattern, path.read_text(encoding="utf-8")):
                found.add(path.relative_to(ROOT).as_posix())
    return found


def test_only_the_state_machine_moves_the_counters() -> None:
    assert calls_of(r"progress\.move\(") == {"broadcaster/dispatch/states.py"}
    assert calls_of(r"progress\.count_planned\(") == {"broadcaster/dispatch/planning.py"}
    assert calls_of(r"AlertProgress\b") == {
        "broadcaster/dispatch/models.py",
        "broadcaster/dispatch/progress.py",
    }


def test_only_the_outbox_writes_batches() -> None:
    writes = r"(update|insert|delete)\(\s*(DispatchBatch\b|cast\(Table, DispatchBatch)"
    assert calls_of(writes) == {"broadcaster/dispatch/outbox.py"}
