"""Does the auditors' delivery log need an index on deliveries (alert_id, id)?

    python -m benchmarks.delivery_log

The log reads a keyset page: `WHERE alert_id = :a [AND status = :s] [AND id > :after]
ORDER BY id LIMIT n + 1` (`broadcaster.dispatch.log`). Without an index that leads with
the alert and then orders by id, PostgreSQL either walks the primary key from the start
(or from `after`) past every other alert's rows until it has n of this one, or reads all
of the alert's rows through (alert_id, batch_no) and sorts them. Which one hurts depends
on where the alert sits in the table, what share of the table it is and how few rows the
filter keeps, so this measures four alerts - the oldest and the newest whole-city alert,
the oldest and the newest district alert - each on its first page, a page from its middle
and the first page of its failed deliveries, and the first rows of a CSV export; then
creates the index and measures the same again, and what the index costs the planner's
bulk write.

The table holds whole-city alerts with district alerts between them, as a city's does:
PostgreSQL costs a LIMIT as if an alert's rows were spread evenly over the primary key,
so the share of the table an alert holds decides which path it takes. A table of a few
whole-city alerts alone (each a sixth of it) is the case where walking the primary key
and reading the index cost the same in its estimate. The defaults give a young table,
whose whole-city alerts are a tenth of it each; BENCH_SUBSCRIBERS=40000 BENCH_ALERTS=2
BENCH_DISTRICT_ALERTS=300 gives one of 300 alerts, closer to a city's after some months,
where a whole-city alert is a twentieth.

Settings (environment):
    BENCH_SUBSCRIBERS           residents to seed (default 150,000: about 270,000
                                contact points, 250,000 of them reachable)
    BENCH_ALERTS                whole-city alerts, to every reachable contact point
                                (default 6)
    BENCH_DISTRICT_ALERTS       district alerts, weather warnings for one district each,
                                written before each whole-city alert in equal groups
                                (default 48); about 2.2 million deliveries in all
    BENCH_RUNS                  runs per case; medians are quoted (default 5)
    BENCH_LOG_DATABASE_URL      a database this benchmark may drop and re-create (default
                                postgresql://postgres@127.0.0.1:5432/wsp_bench_log); not
                                BENCH_DATABASE_URL, so a seeded `make bench` database is
                                never dropped by this one

Every alert is a real one (written, submitted and approved by two people, as in
`benchmarks.city`), whose deliveries are then written as the planner writes them - one
INSERT ... SELECT per alert, so each alert's rows are contiguous in id order - already
sent, but for a random 0.5% that failed with a provider's code. The reads go through
`delivery_log.build_filter`, `read_page` and `export` on the application's own engine,
so psycopg prepares a statement repeated on a connection, as it does in the service.
The index is dropped after migrating, so the first round is measured without it whether
or not the migrations create it.

Past 400 lines, kept whole: a benchmark is one script, run and read top to bottom,
its stages in the order it measures them.
"""

from __future__ import annotations

import itertools
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from sqlalchemy import text
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session, sessionmaker

from benchmarks.city import approve, recreate_database, say

DEFAULT_DATABASE = "postgresql://postgres@127.0.0.1:5432/wsp_bench_log"
INDEX = "ix_deliveries_alert_id_id"
CREATE_INDEX = f"CREATE INDEX {INDEX} ON deliveries (alert_id, id)"
FAILED_SHARE = 0.005
PAGE = 100
EXPORT_ROWS = 10_000
BATCH_SIZE = 500
# Every contact point that the planner would reach on a whole-city alert, all channels.
REACHABLE = (
    "c.address IS NOT NULL AND c.wanted AND c.verified_at IS NOT NULL "
    "AND c.unsubscribed_at IS NULL AND c.disabled_at IS NULL"
)
# The planner's columns (planning.DELIVERY_COLUMNS), and those a send fills in after.
WRITE_DELIVERIES = f"""
INSERT INTO deliveries (
    alert_id, batch_no, subscriber_id, contact_point_id, channel, language, status,
    attempts, provider_id, error_code, created_at, claimed_at, sent_at, finished_at
)
SELECT :alert_id, (row_number() OVER () - 1) / {BATCH_SIZE} + 1, a.subscriber_id, a.id,
    a.channel, a.language,
    CASE WHEN a.failed THEN 'failed' ELSE 'sent' END, 1,
    CASE WHEN NOT a.failed THEN 'bench-' || a.id END,
    CASE WHEN a.failed THEN 'ERR_INVALID_NUMBER' END,
    CAST(:at AS timestamptz), CAST(:at AS timestamptz),
    CASE WHEN NOT a.failed THEN CAST(:at AS timestamptz) END, CAST(:at AS timestamptz)
FROM (
    -- random() in a subquery's select list keeps it from being flattened: once per row.
    SELECT c.id, c.subscriber_id, c.channel, s.language, random() < :failed_share AS failed
    FROM contact_points c JOIN subscribers s ON s.id = c.subscriber_id
    WHERE {REACHABLE} AND (
        CAST(:district AS smallint) IS NULL OR EXISTS (
            SELECT FROM subscriptions d
            WHERE d.subscriber_id = c.subscriber_id AND d.district_id = :district
                AND d.topic_id = :topic
        )
    )
) AS a
"""  # noqa: S608 - fixed text


@dataclass(frozen=True)
class Config:
    subscribers: int
    alerts: int
    district_alerts: int
    runs: int
    database_url: str

    @classmethod
    def from_environment(cls) -> Config:
        return cls(
            subscribers=int(os.environ.get("BENCH_SUBSCRIBERS", "150000")),
            alerts=max(2, int(os.environ.get("BENCH_ALERTS", "6"))),
            district_alerts=max(0, int(os.environ.get("BENCH_DISTRICT_ALERTS", "48"))),
            runs=max(1, int(os.environ.get("BENCH_RUNS", "5"))),
            database_url=os.environ.get("BENCH_LOG_DATABASE_URL", DEFAULT_DATABASE),
        )


@dataclass(frozen=True)
class Span:
    """One alert's deliveries: ids first..last, contiguous."""

    alert_id: int
    district: str | None
    first: int
    last: int
    rows: int
    failed: int

    @property
    def middle(self) -> int:
        return (self.first + self.last) // 2


def _sessions(database_url: str) -> sessionmaker[Session]:
    from broadcaster.db.engine import make_engine, make_sessionmaker
    from broadcaster.settings import get_settings

    os.environ["DATABASE_URL"] = database_url
    get_settings.cache_clear()
    engine = make_engine(database_url, pool_size=1, max_overflow=0)
    return make_sessionmaker(engine, secret_key=get_settings().secret_key)


def _sql(database_url: str, statement: str) -> list[tuple[Any, ...]]:
    """One statement outside any transaction (VACUUM, CREATE INDEX), in its own session."""
    with psycopg.connect(database_url, autocommit=True) as connection:
        cursor = connection.execute(statement)
        return cursor.fetchall() if cursor.description else []


# -- the table ------------------------------------------------------------------------


def seed(config: Config, sessions: sessionmaker[Session]) -> tuple[list[Span], dict[str, Any]]:
    from broadcaster.db import migrate as schema
    from broadcaster.db.engine import make_engine
    from broadcaster.dev import population
    from broadcaster.reference.services import DISTRICTS
    from broadcaster.settings import get_settings

    recreate_database(config.database_url)
    engine = make_engine(config.database_url)
    schema.upgrade(engine, secret_key=get_settings().secret_key)
    engine.dispose()
    _sql(config.database_url, f"DROP INDEX IF EXISTS {INDEX}")
    started = time.perf_counter()
    with sessions.begin() as session:
        report = population.seed_population(session=session, count=config.subscribers)
    say(f"{report.subscribers:,} residents, {report.contact_points:,} contact points seeded")
    districts = itertools.cycle(d.slug for d in DISTRICTS)
    per_city = config.district_alerts // config.alerts
    order = []
    for n in range(config.alerts):
        extra = 1 if n < config.district_alerts % config.alerts else 0
        order += [next(districts) for _ in range(per_city + extra)] + [None]
    spans = []
    now = datetime.now(UTC)
    for n, district in enumerate(order):
        alert_id = new_alert(sessions, f"[log {n + 1}]", district)
        with sessions.begin() as session:
            write_deliveries(session, alert_id, now - timedelta(hours=len(order) - n), district)
        spans.append(span_of(sessions, alert_id, district))
        if district is None:
            say(f"alert {n + 1} of {len(order)}: {spans[-1]}")
    _sql(config.database_url, "VACUUM ANALYZE")
    facts = {
        "residents": report.subscribers,
        "contact_points": report.contact_points,
        "deliveries": sum(s.rows for s in spans),
        "seconds": time.perf_counter() - started,
    }
    return spans, facts


def new_alert(sessions: sessionmaker[Session], label: str, district: str | None = None) -> int:
    alert_id, _ = approve(
        sessions,
        topic="weather-warning",
        channels=["sms", "push", "email"],
        districts=(district,) if district else (),
        label=label,
    )
    return alert_id


def write_deliveries(
    session: Session, alert_id: int, at: datetime, district: str | None = None
) -> int:
    """The alert's deliveries in one INSERT ... SELECT, as the planner writes them: to
    every reachable contact point, or to those of the district's weather-warning
    subscribers."""
    from broadcaster.reference.services import DISTRICT_BY_SLUG, TOPIC_BY_SLUG

    result = session.execute(
        text(WRITE_DELIVERIES),
        {
            "alert_id": alert_id,
            "at": at,
            "failed_share": FAILED_SHARE,
            "district": DISTRICT_BY_SLUG[district].id if district else None,
            "topic": TOPIC_BY_SLUG["weather-warning"].id,
        },
    )
    session.execute(
        text(
            "UPDATE alerts SET status = 'done', dispatched_at = :at, finished_at = :at "
            "WHERE id = :alert_id"
        ),
        {"alert_id": alert_id, "at": at},
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def span_of(sessions: sessionmaker[Session], alert_id: int, district: str | None) -> Span:
    with sessions() as session:
        first, last, rows, failed = session.execute(
            text(
                "SELECT min(id), max(id), count(*), count(*) FILTER (WHERE status = 'failed') "
                "FROM deliveries WHERE alert_id = :a"
            ),
            {"a": alert_id},
        ).one()
    assert last - first + 1 == rows, "an alert's deliveries are contiguous in id order"
    return Span(alert_id, district, first, last, rows, failed)


# -- the reads ------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    label: str
    alert: Span
    after: int | None = None
    failed: bool = False
    export: bool = False


def cases(spans: list[Span]) -> list[Case]:
    city = [s for s in spans if s.district is None]
    district = [s for s in spans if s.district is not None]
    chosen = [("oldest city", city[0]), ("newest city", city[-1])]
    if district:
        chosen += [("oldest district", district[0]), ("newest district", district[-1])]
    found = []
    for name, span in chosen:
        found += [
            Case(f"{name}: first page", span),
            Case(f"{name}: page from the middle", span, after=span.middle),
            Case(f"{name}: first page of failed", span, failed=True),
        ]
    found.append(Case(f"oldest city: export, first {EXPORT_ROWS:,}", city[0], export=True))
    return found


def _chosen(session: Session, case: Case) -> Any:
    from broadcaster.dispatch import log as delivery_log
    from broadcaster.dispatch.models import DeliveryStatus

    return delivery_log.build_filter(
        session=session,
        alert_id=case.alert.alert_id,
        status=DeliveryStatus.FAILED if case.failed else None,
    )


def read_once(sessions: sessionmaker[Session], case: Case) -> float:
    """Seconds for one read of the case, through the log's own code."""
    from broadcaster.dispatch import log as delivery_log

    with sessions() as session:
        chosen = _chosen(session, case)
    started = time.perf_counter()
    if case.export:
        rows = delivery_log.export(sessions=sessions, chosen=chosen)
        count = sum(1 for _ in itertools.islice(rows, EXPORT_ROWS))
        assert count == EXPORT_ROWS, count
    else:
        with sessions() as session:
            page = delivery_log.read_page(
                session=session, chosen=chosen, after=case.after, limit=PAGE
            )
        assert page.rows, case
        assert all(row.alert_id == case.alert.alert_id for row in page.rows)
    return time.perf_counter() - started


def measure(config: Config, sessions: sessionmaker[Session], all_cases: list[Case]) -> list[float]:
    """Median milliseconds per case, after one warm-up read of each."""
    medians = []
    for case in all_cases:
        read_once(sessions, case)
        times = [read_once(sessions, case) for _ in range(config.runs)]
        medians.append(statistics.median(times) * 1000)
        say(f"{case.label}: {medians[-1]:.2f} ms")
    return medians


def plan_summary(sessions: sessionmaker[Session], case: Case) -> str:
    """How the case's plan reaches the deliveries, what the scan threw away, the time."""
    from broadcaster.dispatch import log as delivery_log

    with sessions() as session:
        chosen = _chosen(session, case)
        query = delivery_log._query(chosen, case.after, PAGE + 1)
        compiled = query.compile(
            dialect=postgresql.dialect(),  # type: ignore[no-untyped-call]
            compile_kwargs={"literal_binds": True},
        )
        [[explained]] = session.execute(
            text(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {compiled}".replace(":", "\\:"))
        ).all()
    [top] = explained
    plan = top["Plan"]
    buffers = plan.get("Shared Hit Blocks", 0) + plan.get("Shared Read Blocks", 0)
    path = " > ".join(_path(plan)) or "?"
    return f"{path}; {top['Execution Time']:.2f} ms, {buffers:,} buffers"


# Joins and their plumbing: the same in every plan here, and not where the time goes.
_PLUMBING = {"Limit", "Nested Loop", "Hash Join", "Merge Join", "Materialize", "Memoize"}


def _path(plan: dict[str, Any]) -> list[str]:
    """The nodes from the top to the scan of deliveries (and what feeds that scan)."""
    if plan.get("Relation Name") == "deliveries":
        return [_label(plan)] + [_label(child) for child in plan.get("Plans", [])]
    for child in plan.get("Plans", []):
        below = _path(child)
        if below:
            node = [] if plan["Node Type"] in _PLUMBING else [_label(plan)]
            return node + below
    return []


def _label(plan: dict[str, Any]) -> str:
    label = str(plan["Node Type"])
    if "Index Name" in plan:
        label += f" {plan['Index Name']}"
    if plan["Node Type"] == "Sort":
        label += f" ({plan.get('Sort Method', '?')})"
    if "Relation Name" in plan or "Index Name" in plan:
        label += f" [{plan['Actual Rows']:,} rows"
        if removed := plan.get("Rows Removed by Filter", 0):
            label += f", {removed:,} removed by filter"
        label += "]"
    return label


# -- the write ------------------------------------------------------------------------


def time_write(config: Config, sessions: sessionmaker[Session], alert_id: int) -> float:
    """Seconds for one more alert's deliveries, rolled back (and the dead rows vacuumed)
    so that every run writes into the same table."""
    with sessions() as session:
        started = time.perf_counter()
        rows = write_deliveries(session, alert_id, datetime.now(UTC))
        seconds = time.perf_counter() - started
        session.rollback()
    assert rows > 0
    _sql(config.database_url, "VACUUM deliveries")
    return seconds


def time_planner(config: Config, sessions: sessionmaker[Session], alert_id: int) -> float:
    """Seconds for the real planner on a whole-city alert; what it wrote is then removed
    and the alert approved again (the planner commits chunk by chunk)."""
    from broadcaster.dispatch import planning

    started = time.perf_counter()
    plan = planning.plan_alert(sessions=sessions, alert_id=alert_id, batch_size=BATCH_SIZE)
    seconds = time.perf_counter() - started
    assert plan is not None
    assert plan.complete
    for table in ("deliveries", "dispatch_batches", "alert_progress"):
        _sql(config.database_url, f"DELETE FROM {table} WHERE alert_id = {int(alert_id)}")  # noqa: S608
    _sql(
        config.database_url,
        "UPDATE alerts SET status = 'approved', dispatched_at = NULL, planned_at = NULL "  # noqa: S608
        f"WHERE id = {int(alert_id)}",
    )
    _sql(config.database_url, "VACUUM deliveries")
    return seconds


def write_costs(
    config: Config, sessions: sessionmaker[Session], timer: Callable[..., float], alert_id: int
) -> tuple[float, float]:
    """Median seconds without and with the index, the two alternating run by run."""
    without, with_index = [], []
    for _ in range(config.runs):
        _sql(config.database_url, f"DROP INDEX IF EXISTS {INDEX}")
        without.append(timer(config, sessions, alert_id))
        _sql(config.database_url, CREATE_INDEX)
        with_index.append(timer(config, sessions, alert_id))
    say(f"{timer.__name__}: without {without}, with {with_index}")
    return statistics.median(without), statistics.median(with_index)


# -- the report -----------------------------------------------------------------------


def main() -> int:
    config = Config.from_environment()
    sessions = _sessions(config.database_url)
    started = time.monotonic()
    spans, facts = seed(config, sessions)
    all_cases = cases(spans)
    measured = {c.label.split(":")[0]: c.alert for c in all_cases}.items()
    plans = [c for c in all_cases if not c.export]

    without = measure(config, sessions, all_cases)
    plans_without = [plan_summary(sessions, c) for c in plans]

    built = time.perf_counter()
    _sql(config.database_url, CREATE_INDEX)
    build_seconds = time.perf_counter() - built
    _sql(config.database_url, "ANALYZE deliveries")
    with_index = measure(config, sessions, all_cases)
    plans_with = [plan_summary(sessions, c) for c in plans]

    [(index_bytes, table_bytes, other_bytes)] = _sql(
        config.database_url,
        f"SELECT pg_relation_size('{INDEX}'), pg_relation_size('deliveries'), "  # noqa: S608
        "(SELECT sum(pg_relation_size(indexrelid)) FROM pg_index "
        f"WHERE indrelid = 'deliveries'::regclass AND indexrelid <> '{INDEX}'::regclass)",
    )
    city_rows = next(s.rows for s in spans if s.district is None)
    extra = new_alert(sessions, "[log write]")
    insert_costs = write_costs(config, sessions, time_write, extra)
    planner_alert = new_alert(sessions, "[log planner]")
    planner_costs = write_costs(config, sessions, time_planner, planner_alert)

    lines = [
        f"{facts['residents']:,} residents, {facts['contact_points']:,} contact points; "
        f"{len(spans)} alerts, {facts['deliveries']:,} deliveries; "
        f"medians of {config.runs} runs; PostgreSQL "
        + _sql(config.database_url, "SHOW server_version")[0][0],
        *(
            f"  {name:<16} alert {span.alert_id:>3} {span.district or 'whole city':<14} "
            f"ids {span.first:>9,}..{span.last:>9,}, {span.rows:>7,} rows "
            f"({span.rows / facts['deliveries']:.1%} of the table), {span.failed:,} failed"
            for name, span in measured
        ),
        "",
        f"  {'read (limit 100 a page)':<44} {'without':>11} {'with index':>11} {'ratio':>8}",
    ]
    for case, before, after in zip(all_cases, without, with_index, strict=True):
        lines.append(
            f"  {case.label:<44} {before:>8.2f} ms {after:>8.2f} ms {before / after:>7.1f}x"
        )
    lines += ["", "plans (EXPLAIN ANALYZE, BUFFERS; server time only):"]
    for case, plain, indexed in zip(plans, plans_without, plans_with, strict=True):
        lines += [f"  {case.label}", f"    without: {plain}", f"    with:    {indexed}"]
    mib = 1024 * 1024
    lines += [
        "",
        f"index {INDEX}: {index_bytes / mib:.1f} MiB (table {table_bytes / mib:.1f} MiB, "
        f"its other indexes {other_bytes / mib:.1f} MiB); built in {build_seconds:.2f} s",
        f"  {'write (one more alert)':<44} {'without':>11} {'with index':>11} {'cost':>8}",
    ]
    for label, (before, after) in (
        (f"INSERT ... SELECT, {city_rows:,} rows", insert_costs),
        ("planning.plan_alert (whole city)", planner_costs),
    ):
        lines.append(
            f"  {label:<44} {before * 1000:>8.0f} ms {after * 1000:>8.0f} ms "
            f"{(after / before - 1) * 100:>+7.0f}%"
        )
    lines.append(f"took {time.monotonic() - started:.0f} s")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
