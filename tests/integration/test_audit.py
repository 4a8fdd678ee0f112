"""The audit trail: append-only in the database, and a verifier that names the break."""

import hashlib
import hmac
import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from broadcaster.audit import trail as audit
from broadcaster.audit import verification
from broadcaster.audit.models import AuditEvent
from broadcaster.db.engine import audit_key_from_secret
from broadcaster.errors import InvalidInput
from tests.conftest import TEST_SECRET, as_database_owner


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


def verdict(db: sessionmaker[Session]) -> verification.Verification:
    with db() as session:
        return verification.verify_chain(session=session, batch_size=2)


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


# The tip and the checkpoints -------------------------------------------------------------


def head_row(engine: Engine) -> tuple[int, str, str]:
    with engine.connect() as connection:
        seq, tip_hash, seal = connection.execute(
            text("SELECT seq, hash, seal FROM audit_head")
        ).one()
    return int(seq), tip_hash, seal


def take_checkpoint(db: sessionmaker[Session]) -> verification.Checkpoint:
    with db() as session:
        checkpoint = verification.take_checkpoint(session=session)
    assert checkpoint is not None
    return checkpoint


def cut_the_tail(engine: Engine, *, keep: int, head: tuple[int, str, str] | None = None) -> None:
    """Delete every record after `keep` and point the tip at record `keep` with what the
    database shows, or put back a head row copied earlier."""
    with as_database_owner(engine) as connection:
        connection.execute(text("DELETE FROM audit_events WHERE seq > :keep"), {"keep": keep})
        if head is None:
            tip_hash = connection.execute(
                text("SELECT hash FROM audit_events WHERE seq = :keep"), {"keep": keep}
            ).scalar_one()
            connection.execute(
                text("UPDATE audit_head SET seq = :seq, hash = :hash"),
                {"seq": keep, "hash": tip_hash},
            )
        else:
            connection.execute(
                text("UPDATE audit_head SET seq = :seq, hash = :hash, seal = :seal"),
                dict(zip(("seq", "hash", "seal"), head, strict=True)),
            )


def test_a_tail_cut_and_the_tip_moved_back_is_caught(
    db: sessionmaker[Session], engine: Engine
) -> None:
    """Delete the newest records past the triggers and set the tip to the previous record's
    (seq, hash), both readable in the database: the seal gives it away."""
    write_events(db, 5)
    cut_the_tail(engine, keep=3)
    result = verdict(db)
    assert (result.intact, result.checked, result.broken_seq) == (False, 3, 4)
    assert "seal does not match" in (result.problem or "")


def test_a_tip_with_its_seal_cleared_is_caught(db: sessionmaker[Session], engine: Engine) -> None:
    write_events(db, 2)
    with as_database_owner(engine) as connection:
        connection.execute(text("UPDATE audit_head SET seal = :s"), {"s": "0" * 64})
    assert not verdict(db).intact
    with db() as session:
        assert verification.take_checkpoint(session=session) is None


def test_an_old_tip_put_back_is_caught_by_a_later_checkpoint(
    db: sessionmaker[Session], engine: Engine
) -> None:
    """The one cut the seal cannot see: the head row copied at seq 3 and put back once the
    records after it are gone. A checkpoint taken after seq 5 sees it."""
    write_events(db, 3)
    copied = head_row(engine)
    write_events(db, 2)
    checkpoint = take_checkpoint(db)
    assert checkpoint.seq == 5
    write_events(db, 1)
    cut_the_tail(engine, keep=3, head=copied)
    assert verdict(db).intact  # what the README says is not detected without a checkpoint
    with db() as session:
        result = verification.verify_chain(session=session, checkpoints=[checkpoint])
    assert (result.intact, result.checked, result.broken_seq) == (False, 3, 4)
    assert "saw seq 5" in (result.problem or "")


def test_a_chain_that_grew_past_its_checkpoints_is_intact(db: sessionmaker[Session]) -> None:
    empty = take_checkpoint(db)
    write_events(db, 2)
    first = take_checkpoint(db)
    write_events(db, 3)
    with db() as session:
        result = verification.verify_chain(session=session, checkpoints=[first, empty])
    assert (result.intact, result.checked) == (True, 5)


def test_a_record_changed_under_a_checkpoint_is_named(
    db: sessionmaker[Session], engine: Engine
) -> None:
    """A checkpoint's hash is what the record at its seq must still hash to."""
    write_events(db, 3)
    checkpoint = take_checkpoint(db)
    forged = verification.Checkpoint.material(checkpoint.seq, "f" * 64, checkpoint.taken_at)
    key = audit_key_from_secret(TEST_SECRET)
    mismatch = verification.Checkpoint(
        seq=checkpoint.seq,
        hash="f" * 64,
        taken_at=checkpoint.taken_at,
        seal=hmac.new(key, forged, hashlib.sha256).hexdigest(),
    )
    with db() as session:
        result = verification.verify_chain(session=session, checkpoints=[mismatch])
    assert (result.intact, result.broken_seq) == (False, 3)
    assert "differs from what the checkpoint" in (result.problem or "")


def test_a_checkpoint_not_issued_by_this_trail_is_refused(db: sessionmaker[Session]) -> None:
    write_events(db, 2)
    checkpoint = take_checkpoint(db)
    edited = verification.Checkpoint(
        seq=checkpoint.seq + 1,
        hash=checkpoint.hash,
        taken_at=checkpoint.taken_at,
        seal=checkpoint.seal,
    )
    with db() as session, pytest.raises(InvalidInput, match="not issued by this audit trail"):
        verification.verify_chain(session=session, checkpoints=[edited])


def test_checkpoints_are_read_from_any_text_a_log_included() -> None:
    line = (
        '{"audit_checkpoint":1,"seq":7,"hash":"' + "a" * 64 + '",'
        '"taken_at":"2026-12-03T09:00:00+00:00","seal":"' + "b" * 64 + '"}'
    )
    log = f"[2026-12-03 09:00:00,001: INFO/MainProcess] audit checkpoint {line}\nother line\n"
    (found,) = verification.parse_checkpoints(log)
    assert (found.seq, found.hash, found.taken_at.isoformat()) == (
        7,
        "a" * 64,
        "2026-12-03T09:00:00+00:00",
    )
    assert verification.Checkpoint.as_line(found) == line


@pytest.mark.parametrize(
    "text_",
    [
        '{"audit_checkpoint":1,"seq":7}',
        '{"audit_checkpoint":1,"seq":"7","hash":"' + "a" * 64 + '"}',
        '{"audit_checkpoint":1,"seq":-1,"hash":"'
        + "a" * 64
        + '","taken_at":"2026-12-03T09:00:00+00:00","seal":"'
        + "b" * 64
        + '"}',
        '{"audit_checkpoint":1,"seq":1,"hash":"'
        + "A" * 64
        + '","taken_at":"2026-12-03T09:00:00","seal":"'
        + "b" * 64
        + '"}',
        '{"audit_checkpoint": {not json',
        "nothing here",
        "",
    ],
)
def test_a_text_that_is_no_checkpoint_is_refused_naming_the_field(text_: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        verification.parse_checkpoints(text_, field="--checkpoint kept.txt")
    assert refused.value.field == "--checkpoint kept.txt"


def test_a_moved_tip_stays_unsealed_whatever_is_appended_after_it(
    db: sessionmaker[Session], engine: Engine
) -> None:
    """An append after the cut must not seal the moved tip anew: a resident signing up is
    enough to append, seconds after the attack."""
    write_events(db, 5)
    cut_the_tail(engine, keep=3)
    write_events(db, 2)
    result = verdict(db)
    assert (result.intact, result.checked) == (False, 5)
    assert "seal does not match" in (result.problem or "")
    with db() as session:
        assert verification.take_checkpoint(session=session) is None


def test_no_checkpoint_is_given_for_a_chain_that_does_not_verify(
    db: sessionmaker[Session], engine: Engine
) -> None:
    write_events(db, 3)
    with as_database_owner(engine) as connection:
        connection.execute(text("UPDATE audit_events SET actor = 'operator:9' WHERE seq = 2"))
    with db() as session:
        assert verification.take_checkpoint(session=session) is None


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_head SET seal = :odd",
        "UPDATE audit_events SET hash = :odd WHERE seq = 2",
    ],
)
def test_odd_bytes_in_a_stored_hash_or_seal_are_a_broken_chain_not_a_crash(
    db: sessionmaker[Session], engine: Engine, statement: str
) -> None:
    write_events(db, 3)
    with as_database_owner(engine) as connection:
        connection.execute(text(statement), {"odd": "ą" * 64})
    assert not verdict(db).intact


def test_the_workers_real_log_lines_around_a_checkpoint_are_skipped(
    db: sessionmaker[Session],
) -> None:
    """Celery logs the task's name and its result next to the checkpoint line."""
    write_events(db, 2)
    checkpoint = take_checkpoint(db)
    log = (
        "[2026-12-03 09:00:00,101: INFO/MainProcess] Task tasks.jobs.log_audit_checkpoint"
        "[0d6c1f2e-5b7a-4f59-9a53-2a3c1b9f6e10] received\n"
        "[2026-12-03 09:00:00,180: INFO/ForkPoolWorker-1] audit checkpoint "
        f"{checkpoint.as_line()}\n"
        "[2026-12-03 09:00:00,181: INFO/ForkPoolWorker-1] Task tasks.jobs.log_audit_checkpoint"
        "[0d6c1f2e-5b7a-4f59-9a53-2a3c1b9f6e10] succeeded in 0.08s: {'seq': 2}\n"
    )
    assert verification.parse_checkpoints(log) == [checkpoint]


def test_a_checkpoint_line_nested_too_deep_is_refused_not_a_crash() -> None:
    deep = '{"audit_checkpoint":1,"x":' + "[" * 100_000 + "]" * 100_000 + "}"
    with pytest.raises(InvalidInput, match="line 1"):
        verification.parse_checkpoints(deep)


def test_a_record_forged_past_the_tip_is_caught(db: sessionmaker[Session], engine: Engine) -> None:
    """A plain INSERT, which no trigger refuses: the listings would show it, so the
    verifier must not pass it by for lying past the tip."""
    write_events(db, 3)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO audit_events (seq, occurred_at, actor, action, object_type, "
                "object_id, payload, prev_hash, hash) VALUES (1000000, :at, 'operator:7', "
                "'alert.approve', 'alert', '1', '{}', :h, :h)"
            ),
            {"at": datetime(2026, 12, 3, tzinfo=UTC), "h": "a" * 64},
        )
    result = verdict(db)
    assert (result.intact, result.checked) == (False, 3)
    assert "past its tip" in (result.problem or "")


def test_a_tip_moved_back_over_records_still_there_is_caught(
    db: sessionmaker[Session], engine: Engine
) -> None:
    """The head row copied at seq 2 and put back, nothing deleted: the records after it
    would escape the walk."""
    write_events(db, 2)
    copied = head_row(engine)
    write_events(db, 2)
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE audit_head SET seq = :seq, hash = :hash, seal = :seal"),
            dict(zip(("seq", "hash", "seal"), copied, strict=True)),
        )
    result = verdict(db)
    assert (result.intact, result.checked) == (False, 2)
    assert "record seq 4, past its tip (seq 2)" in (result.problem or "")


def test_a_removed_tip_is_a_broken_chain_not_a_crash(
    db: sessionmaker[Session], engine: Engine
) -> None:
    write_events(db, 2)
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_head"))
    assert "tip is missing" in (verdict(db).problem or "")
    with db() as session:
        assert verification.take_checkpoint(session=session) is None


def test_a_value_no_column_type_reads_is_a_broken_chain_not_a_crash(
    db: sessionmaker[Session], engine: Engine
) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL refuses a value its column's type does not hold")
    write_events(db, 3)
    with as_database_owner(engine) as connection:
        connection.execute(text("UPDATE audit_events SET occurred_at = 'garbage' WHERE seq = 2"))
    result = verdict(db)  # rows come two by two: the pair holding seq 2 does not read
    assert (result.intact, result.checked, result.broken_seq) == (False, 0, 1)
    assert "a record cannot be read" in (result.problem or "")


def test_a_tip_whose_hash_was_changed_is_named_so(
    db: sessionmaker[Session], engine: Engine
) -> None:
    write_events(db, 3)
    with engine.begin() as connection:
        connection.execute(text("UPDATE audit_head SET hash = :h"), {"h": "ą" * 64})
    result = verdict(db)
    assert (result.intact, result.checked) == (False, 3)
    assert "names seq 3 but not its hash" in (result.problem or "")
