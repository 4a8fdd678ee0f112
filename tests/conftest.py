"""Shared fixtures: real databases (SQLite and PostgreSQL), settings, people.

Every integration test runs once on SQLite and once on PostgreSQL. Each test gets a clean
database: SQLite a fresh copy of a migrated file; PostgreSQL one database per test worker,
emptied (reference data kept) before each test.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from broadcaster.audit import trail as audit
from broadcaster.db import migrate as schema
from broadcaster.db.engine import Base, audit_key_from_secret, make_engine, make_sessionmaker
from broadcaster.dispatch import planning, rendering, sending, sweeper
from broadcaster.dispatch.models import Delivery
from broadcaster.reference.services import seed_reference_data
from broadcaster.settings import Settings, load_settings
from broadcaster.staff import operators
from broadcaster.staff.models import Operator
from channels.interfaces import DeliveryResult, Outcome
from subscribers import services as subscriber_services
from subscribers.models import Subscriber
from subscribers.verification import CodeCheck, check_code

POSTGRES_ADMIN_URL = os.environ.get(
    "WSP_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REFERENCE_TABLES = {"districts", "topics", "audit_head"}
TEST_SECRET = "test-secret-key-0123456789"


def _worker() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    schema.upgrade(engine, secret_key=TEST_SECRET)
    with make_sessionmaker(engine, secret_key=TEST_SECRET).begin() as session:
        seed_reference_data(session=session)
    with engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    # A separate prefix lets two checkouts run their suites side by side on one server.
    name = f"{os.environ.get('WSP_TEST_DB_PREFIX', 'wsp_test')}_{_worker()}"
    admin = make_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    schema.upgrade(engine, secret_key=TEST_SECRET)
    with make_sessionmaker(engine, secret_key=TEST_SECRET).begin() as session:
        seed_reference_data(session=session)
    engine.dispose()
    yield url
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _empty_postgres(engine: Engine) -> None:
    tables = [t.name for t in Base.metadata.sorted_tables if t.name not in REFERENCE_TABLES]
    with engine.begin() as connection:
        # The audit table refuses TRUNCATE by trigger; a test reset is the one exception.
        connection.execute(text("SET LOCAL session_replication_role = replica"))
        connection.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        empty = audit.seal_of(
            key=audit_key_from_secret(TEST_SECRET), seq=0, tip_hash=audit.GENESIS_HASH
        )
        # A test may have removed the row itself.
        connection.execute(text("DELETE FROM audit_head"))
        connection.execute(
            text("INSERT INTO audit_head (id, seq, hash, seal) VALUES (:id, 0, :h, :s)"),
            {"id": audit.HEAD_ID, "h": audit.GENESIS_HASH, "s": empty},
        )


@contextmanager
def as_database_owner(engine: Engine) -> Iterator[Connection]:
    """What someone with the owner's rights could do: get past the append-only triggers."""
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("SET LOCAL session_replication_role = replica"))
        else:
            connection.execute(text("DROP TRIGGER audit_events_no_update"))
            connection.execute(text("DROP TRIGGER audit_events_no_delete"))
        yield connection


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "broadcaster.db"
        shutil.copy(template, path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("postgres_url")
    engine = make_engine(url)
    _empty_postgres(engine)
    engine.dispose()
    return url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def db(engine: Engine) -> sessionmaker[Session]:
    """A session factory; tests open `with db.begin() as session:` like the faces do."""
    return make_sessionmaker(engine, secret_key=TEST_SECRET)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(
        {
            "WSP_ENV": "test",
            "WSP_DATA_DIR": str(tmp_path),
            "WSP_SECRET_KEY": TEST_SECRET,
        }
    )


@dataclass
class Staff:
    author: Operator
    second_author: Operator
    approver: Operator
    auditor: Operator
    admin: Operator


@pytest.fixture
def staff(db: sessionmaker[Session]) -> Staff:
    with db.begin() as session:
        people = {
            name: operators.create_operator(
                session=session,
                username=name,
                role=role,
                display_name=name.title(),
                created_by="system:test",
            )
            for name, role in [
                ("anna", "operator"),
                ("bartek", "operator"),
                ("celina", "approver"),
                ("dorota", "auditor"),
                ("edward", "admin"),
            ]
        }
    return Staff(
        people["anna"], people["bartek"], people["celina"], people["dorota"], people["edward"]
    )


def add_sms_residents(
    session: Session, settings: Settings, district: str = "wola", count: int = 2
) -> None:
    """`count` residents of `district` who follow weather warnings by SMS (+48601000001...)."""
    for number in range(1, count + 1):
        add_resident(
            session,
            settings,
            contacts=[("sms", f"+4860100{number:04d}")],
            topics=["weather-warning"],
            districts=[district],
        )


def add_resident(
    session: Session,
    settings: Settings,
    *,
    contacts: list[tuple[str, str]],
    topics: list[str],
    districts: list[str],
    verify: bool = True,
    language: str = "pl",
    test_audience: bool = False,
) -> Subscriber:
    """A resident who subscribed and, unless told otherwise, typed in every code sent."""
    created = subscriber_services.subscribe(
        session=session,
        settings=settings,
        contacts=contacts,
        topics=topics,
        districts=districts,
        language=language,
        test_audience=test_audience,
    )
    if verify:
        for point in created.subscriber.contact_points:
            result = check_code(
                session=session,
                settings=settings,
                contact_point=point,
                code=created.codes[point.id],
            )
            assert result is CodeCheck.VERIFIED
    return created.subscriber


def send_alert(
    db: sessionmaker[Session],
    settings: Settings,
    alert_id: int,
    *,
    outcome: Outcome = Outcome.SENT,
) -> list[int]:
    """Plan an approved alert, record every message as `outcome` (sent, or refused for
    good) and let the sweeper finish it; the contact points it was planned for."""
    sent = outcome is Outcome.SENT
    with db.begin() as session:
        plan = planning.plan_alert(sessions=db, alert_id=alert_id)
        assert plan is not None
        for batch in plan.due:
            claimed = sending.claim(
                session=session,
                settings=settings,
                variants=rendering.Variants(),
                alert_id=alert_id,
                batch_no=batch.batch_no,
            )
            assert claimed is not None
            sending.record(
                session=session,
                claimed=claimed,
                results=[
                    DeliveryResult(
                        m.delivery_id,
                        outcome,
                        provider_id=f"p{m.delivery_id}" if sent else None,
                        error_code=None if sent else "smtp-550",
                    )
                    for m in claimed.messages
                ],
            )
        planned_for = session.scalars(
            select(Delivery.contact_point_id).where(Delivery.alert_id == alert_id)
        ).all()
    with db.begin() as session:
        assert sweeper.sweep(session=session, lease_seconds=60).finished == [alert_id]
    return sorted(planned_for)


# 202 characters of Polish with diacritics: UCS-2, 67 units a part, so 4 SMS parts, one
# more than the default WSP_SMS_MAX_PARTS (3); transliterated to GSM-7 it needs 2.
LONG_PL = (
    "Silne burze z gradem nad Wolą i Bemowem od 18:00 do 23:00. Zostań w domu, zamknij "
    "okna, nie parkuj pod drzewami. Unikaj przejść podziemnych, które mogą zostać zalane. "
    "Śledź komunikaty miasta na stronie."
)
assert len(LONG_PL) == 202
