"""Does an answer tell who is registered? The residents' routes that take an address,
timed for an address registered (and proven) and for one we have never seen, side by
side, in one run, through the whole HTTP application.

The request only checks the input and the limits, holds the rest for a worker (a
sign-up, a reminder: one row written, whoever asks) and hands the worker its id; here
the ids are collected, not run, as the broker would take them.

Usage: python -m benchmarks.enumeration [--requests N] [--database sqlite|postgresql]
       BENCH_ENUM_POSTGRES_URL: a PostgreSQL database it may empty
       (default postgresql://postgres@127.0.0.1:5432/wsp_bench_enum)
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import make_url

from broadcaster.db import migrate as schema
from broadcaster.db.engine import make_engine, make_sessionmaker
from broadcaster.http.app import create_app
from broadcaster.reference import services as reference
from broadcaster.settings import Settings, load_settings
from subscribers import services
from subscribers.verification import CodeCheck, check_code

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/wsp_bench_enum"
# One registered, proven number per route: each may be sent 100 codes or links an hour.
KNOWN_PHONES = ("+48601000700", "+48601000701", "+48601000702")


def _database(kind: str, directory: Path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{directory / 'enum.db'}"
    url = os.environ.get("BENCH_ENUM_POSTGRES_URL", DEFAULT_POSTGRES)
    admin = make_engine(str(make_url(url).set(database="postgres")), isolation_level="AUTOCOMMIT")
    name = make_url(url).database
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return url


def _settings(database_url: str, directory: Path) -> Settings:
    return load_settings(
        {
            "WSP_ENV": "test",
            "WSP_DATA_DIR": str(directory),
            "WSP_SECRET_KEY": "enumeration-benchmark-secret-0123456789",
            "DATABASE_URL": database_url,
            # The limits would stop the run long before the figures settle (the known
            # number is asked for 100 times per route at the most: --requests 100).
            "WSP_VERIFICATION_CODES_PER_HOUR": "100",
            "WSP_VERIFICATION_MESSAGES_PER_IP_PER_HOUR": "100000",
            "WSP_VERIFICATION_MESSAGES_PER_HOUR": "10000000",
        }
    )


def _prepare(settings: Settings) -> None:
    engine = make_engine(settings.database_url)
    schema.upgrade(engine, secret_key=settings.secret_key)
    sessions = make_sessionmaker(engine, secret_key=settings.secret_key)
    with sessions.begin() as session:
        reference.seed_reference_data(session=session)
        for phone in KNOWN_PHONES:
            created = services.subscribe(
                session=session,
                settings=settings,
                contacts=[("sms", phone)],
                topics=["weather-warning"],
                districts=["*"],
                language="pl",
            )
            [point] = created.subscriber.contact_points
            code = created.codes[point.id]
            verdict = check_code(session=session, settings=settings, contact_point=point, code=code)
            assert verdict is CodeCheck.VERIFIED
    engine.dispose()


def _median_ms(call: Callable[[], Any], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        answer = call()
        times.append(time.perf_counter() - started)
        assert answer.status_code == 202, answer.text
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        settings = _settings(_database(args.database, directory), directory)
        _prepare(settings)
        handed: list[Any] = []
        app = create_app(settings, publish=lambda reports: None, notify=handed.append)
        counter = iter(range(10**9))

        def unknown() -> str:
            return f"+486090{next(counter):05d}"  # a new number every time

        def sign_up(address: Callable[[], str]) -> Callable[[], Any]:
            return lambda: client.post(
                "/residents/subscribe",
                json={
                    "contacts": [{"channel": "sms", "address": address()}],
                    "topics": ["weather-warning"],
                    "districts": ["mokotow"],
                },
            )

        def ask(route: str, address: Callable[[], str]) -> Callable[[], Any]:
            return lambda: client.post(route, json={"channel": "sms", "address": address()})

        print(f"{args.database}, {args.requests} requests per case, median ms per request")
        print(f"{'route':24} {'registered':>11} {'unknown':>9} {'ratio':>6}")
        with TestClient(app) as client:
            cases = [
                ("POST /residents/subscribe", sign_up),
                ("POST /residents/codes", lambda a: ask("/residents/codes", a)),
                ("POST /residents/links", lambda a: ask("/residents/links", a)),
            ]
            for (name, make), phone in zip(cases, KNOWN_PHONES, strict=True):
                known_call, unknown_call = make(lambda p=phone: p), make(unknown)
                # Interleaved rounds, so that a noisy moment lands on both alike.
                known_times, unknown_times = [], []
                for _ in range(5):
                    known_times.append(_median_ms(known_call, args.requests // 5))
                    unknown_times.append(_median_ms(unknown_call, args.requests // 5))
                known_ms = statistics.median(known_times)
                unknown_ms = statistics.median(unknown_times)
                print(f"{name:24} {known_ms:11.2f} {unknown_ms:9.2f} {known_ms / unknown_ms:6.2f}")
        kinds = sorted({queued.kind.value for queued in handed})
        print(f"hand-offs to the workers: {len(handed)} ({', '.join(kinds)})")


if __name__ == "__main__":
    main()
