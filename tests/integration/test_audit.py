"""The audit trail: append-only in the database, and a verifier that names the break."""

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import Connection, Engine, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from broadcaster import audit
from broadcaster.models import AuditEvent


def write_events(db: sessionmaker[Session], count: int) -> None:
    for number in range(count):
        with db.begin() as session:
            audit.record(
                session=session,
                actor="operator:1",
                action="alert.created",
                object_type="alert",
                object_id=number,
                payload={"n": number, "topic": "health"},
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


def verdict(db: sessionmaker[Session]) -> audit.Verification:
    with db() as session:
        return audit.verify_chain(session=session, batch_size=2)


def test_an_untouched_chain_is_intact(db: sessionmaker[Session]) -> None:
    write_events(db, 5)
    result = verdict(db)
    assert result.intact
    assert result.checked == 5
    assert result.describe() == "intact: 5 records"


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_events SET actor = 'operator:2' WHERE seq = 2",
        "DELETE FROM audit_events WHERE seq = 2",
    ],
)
def test_the_database_refuses_changes(
    db: sessionmaker[Session], engine: Engine, statement: str
) -> None:
    write_events(db, 3)
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as connection:
        connection.execute(text(statement))
    assert verdict(db).intact


def test_postgres_refuses_truncate(db: sessionmaker[Session], engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no TRUNCATE")
    write_events(db, 1)
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as connection:
        connection.execute(text("TRUNCATE audit_events"))


def test_an_edited_record_is_named(db: sessionmaker[Session], engine: Engine) -> None:
    write_events(db, 5)
    with as_database_owner(engine) as connection:
        connection.execute(
            text("UPDATE audit_events SET payload = :p WHERE seq = 3"), {"p": '{"n":99}'}
        )
    result = verdict(db)
    assert not result.intact
    assert result.broken_seq == 3
    assert "changed" in (result.problem or "")
    assert result.describe().startswith("broken at record seq 3 (id ")


def test_a_forged_chain_without_the_key_is_caught(
    db: sessionmaker[Session], engine: Engine
) -> None:
    """Someone with the database but not the key edits record 2 and re-chains every record,
    head included: each hash follows its neighbour, yet the key gives the forgery away."""
    write_events(db, 4)
    forger_key = b"not-the-key"
    with db() as session:
        events = session.scalars(select(AuditEvent).order_by(AuditEvent.seq)).all()
    with as_database_owner(engine) as connection:
        prev = audit.GENESIS_HASH
        for event in events:
            who = "operator:666" if event.seq == 2 else event.actor
            digest = audit.chain_hash(
                key=forger_key,
                prev_hash=prev,
                seq=event.seq,
                occurred_at=event.occurred_at,
                actor=who,
                action=event.action,
                object_type=event.object_type,
                object_id=event.object_id,
                payload=event.payload,
            )
            connection.execute(
                text(
                    "UPDATE audit_events SET actor = :a, prev_hash = :p, hash = :h WHERE seq = :s"
                ),
                {"a": who, "p": prev, "h": digest, "s": event.seq},
            )
            prev = digest
        connection.execute(text("UPDATE audit_head SET hash = :h"), {"h": prev})
    result = verdict(db)
    assert (result.intact, result.broken_seq) == (False, 1)


def test_a_deleted_record_is_named(db: sessionmaker[Session], engine: Engine) -> None:
    write_events(db, 5)
    with as_database_owner(engine) as connection:
        connection.execute(text("DELETE FROM audit_events WHERE seq = 3"))
    result = verdict(db)
    assert (result.intact, result.broken_seq) == (False, 3)
    assert "missing" in (result.problem or "")


def test_reordered_records_are_named(db: sessionmaker[Session], engine: Engine) -> None:
    write_events(db, 5)
    with as_database_owner(engine) as connection:
        connection.execute(text("UPDATE audit_events SET seq = -1 WHERE seq = 2"))
        connection.execute(text("UPDATE audit_events SET seq = 2 WHERE seq = 3"))
        connection.execute(text("UPDATE audit_events SET seq = 3 WHERE seq = -1"))
    result = verdict(db)
    assert (result.intact, result.broken_seq) == (False, 2)


def test_records_cut_off_the_end_are_noticed(db: sessionmaker[Session], engine: Engine) -> None:
    write_events(db, 5)
    with as_database_owner(engine) as connection:
        connection.execute(text("DELETE FROM audit_events WHERE seq >= 4"))
    result = verdict(db)
    assert (result.intact, result.broken_seq, result.checked) == (False, 4, 3)
    assert "removed from the end" in (result.problem or "")


def test_personal_data_never_enters_the_chain(db: sessionmaker[Session]) -> None:
    with db.begin() as session, pytest.raises(ValueError, match="personal data"):
        audit.record(
            session=session,
            actor="subscriber:1",
            action="contact.added",
            object_type="contact_point",
            object_id=1,
            payload={"email": "jan@example.com"},
        )


def test_concurrent_writers_never_fork_the_chain(db: sessionmaker[Session]) -> None:
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            write_events(db, 15)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    result = verdict(db)
    assert result.intact
    assert result.checked == 60


def test_verifying_while_others_append_raises_no_false_alarm(db: sessionmaker[Session]) -> None:
    write_events(db, 3)
    stop = threading.Event()

    def appender() -> None:
        while not stop.is_set():
            write_events(db, 1)

    thread = threading.Thread(target=appender)
    thread.start()
    try:
        verdicts = [verdict(db) for _ in range(15)]
    finally:
        stop.set()
        thread.join()
    assert all(v.intact for v in verdicts), [v.describe() for v in verdicts if not v.intact]
    assert verdict(db).intact


def test_nested_personal_data_is_refused_too(db: sessionmaker[Session]) -> None:
    with db.begin() as session, pytest.raises(ValueError, match="phone"):
        audit.record(
            session=session,
            actor="system:test",
            action="x",
            object_type="x",
            object_id=1,
            payload={"changes": [{"Phone": "+48601000000"}]},
        )
