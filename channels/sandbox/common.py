"""What every sandbox provider shares: faults to inject and a record of what arrived."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass, field, fields
from typing import Any

# What a broken proxy in front of a provider might answer with a 200 (`garbage_rate`).
GARBAGE = "<html><body>502 Bad Gateway</body></html>"


@dataclass
class Faults:
    """Misbehaviour on request. Rates are fractions of requests (or recipients) from 0 to 1."""

    # Requests answered with a server error (HTTP 500/503, SMTP 451).
    error_rate: float = 0.0
    # Requests answered 429 with Retry-After (SMTP: 421 "try later").
    throttle_rate: float = 0.0
    # The next this many requests are throttled whatever the rate (a test that must see one).
    throttle_next: float = 0.0
    retry_after: float = 1.0
    # Requests answered 200 with a body that is not the provider's (a proxy's page): the
    # message is not accepted, and the client is left with an answer it cannot read.
    # HTTP providers only; SMTP answers these with 451.
    garbage_rate: float = 0.0
    # Added to every answer.
    latency_ms: float = 0.0
    # Addresses the provider refuses for good: invalid numbers, dead tokens, unknown mailboxes.
    refused: set[str] = field(default_factory=set)
    # Numbers whose delivery report says undelivered.
    undelivered: set[str] = field(default_factory=set)

    def update(self, values: dict[str, Any]) -> None:
        names = {f.name for f in fields(self)}
        for key, value in values.items():
            if key not in names:
                raise ValueError(f"unknown fault {key!r}; known: {sorted(names)}")
            setattr(self, key, set(value) if key in {"refused", "undelivered"} else float(value))

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["refused"] = sorted(self.refused)
        data["undelivered"] = sorted(self.undelivered)
        return data


class Recorder:
    """Thread-safe record of accepted messages, each counted under its identity: the
    address and what names the message (an SMS idx, a push's alert, an e-mail's
    Message-ID), so one resident receiving two alerts is not a duplicate, and the same
    message arriving twice is."""

    def __init__(self, keep: int = 2000, seed: int | None = None) -> None:
        self.lock = threading.Lock()
        self.faults = Faults()
        self.random = random.Random(seed)  # noqa: S311 - fault injection, not secrets
        self.keep = keep
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.requests = 0
            # When the first request since the reset came (epoch seconds): a benchmark
            # times an alert's first provider call from it.
            self.first_request_at: float | None = None
            self.accepted = 0
            self.refused = 0
            self.errors = 0
            self.throttled = 0
            self.per_message: Counter[str] = Counter()
            self.recent: deque[dict[str, Any]] = deque(maxlen=self.keep)
            # When each request came and what it was answered: ok, throttle or error.
            self.log: deque[tuple[float, str]] = deque(maxlen=20000)
            self.faults = Faults()

    def roll(self, rate: float) -> bool:
        return rate > 0 and self.random.random() < rate

    def request(self) -> str | None:
        """Count a request; return 'error' or 'throttle' when a fault hits it."""
        with self.lock:
            self.requests += 1
            if self.first_request_at is None:
                self.first_request_at = time.time()
            fault = None
            if self.faults.throttle_next >= 1:
                self.faults.throttle_next -= 1
                self.throttled += 1
                fault = "throttle"
            elif self.roll(self.faults.throttle_rate):
                self.throttled += 1
                fault = "throttle"
            elif self.roll(self.faults.error_rate):
                self.errors += 1
                fault = "error"
            elif self.roll(self.faults.garbage_rate):
                self.errors += 1
                fault = "garbage"
            self.log.append((time.time(), fault or "ok"))
        return fault

    def accept(self, address: str, record: dict[str, Any], identity: str = "") -> None:
        with self.lock:
            self.accepted += 1
            self.per_message[f"{address}|{identity}"] += 1
            self.recent.append({"address": address, "at": time.time(), **record})

    def refuse(self, count: int = 1) -> None:
        with self.lock:
            self.refused += count

    def counts(self) -> dict[str, Any]:
        with self.lock:
            return {
                "requests": self.requests,
                "first_request_at": self.first_request_at,
                "accepted": self.accepted,
                "refused": self.refused,
                "errors": self.errors,
                "throttled": self.throttled,
                "distinct": len(self.per_message),
                "duplicates": sum(n - 1 for n in self.per_message.values() if n > 1),
            }

    def requests_log(self) -> list[tuple[float, str]]:
        with self.lock:
            return list(self.log)

    def messages(self, limit: int = 100) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.recent)[-limit:]
