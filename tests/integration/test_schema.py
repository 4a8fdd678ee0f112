"""Migrations build exactly the schema the models describe, and run both ways."""

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect, text
from sqlalchemy.orm import Session, sessionmaker

from broadcaster.audit import trail as audit
from broadcaster.audit import verification
from broadcaster.db import migrate as schema
from broadcaster.db.engine import Base, audit_key_from_secret, make_sessionmaker
from broadcaster.reference.services import seed_reference_data
from tests.conftest import TEST_SECRET


def test_migrated_schema_matches_the_models(engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []


def test_downgrade_and_upgrade_again(engine: Engine) -> None:
    schema.downgrade(engine, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    schema.upgrade(engine, secret_key=TEST_SECRET)
    # Later tests on this database need the reference data back.
    with make_sessionmaker(engine, secret_key=TEST_SECRET).begin() as session:
        seed_reference_data(session=session)
    assert {"alerts", "deliveries", "subscribers", "audit_events"} <= set(
        inspect(engine).get_table_names()
    )


def test_the_seal_migration_seals_the_tip_as_it_stands_and_needs_the_key(
    db: sessionmaker[Session], engine: Engine
) -> None:
    with db.begin() as session:
        audit.record(session=session, actor="system:test", action="x", object_type="x", object_id=1)
    schema.downgrade(engine, "0009")
    with engine.connect() as connection:
        seq, tip_hash = connection.execute(text("SELECT seq, hash FROM audit_head")).one()
        config = schema.alembic_config(engine)
        config.attributes["connection"] = connection
        with pytest.raises(RuntimeError, match="broadcaster migrate"):
            command.upgrade(config, "head")
    schema.upgrade(engine, secret_key=TEST_SECRET)
    with engine.connect() as connection:
        seal = connection.execute(text("SELECT seal FROM audit_head")).scalar_one()
    key = audit_key_from_secret(TEST_SECRET)
    assert seal == audit.seal_of(key=key, seq=seq, tip_hash=tip_hash)
    with db() as session:
        assert verification.verify_chain(session=session).intact


def test_the_seal_migration_leaves_a_tip_already_moved_unsealed(
    db: sessionmaker[Session], engine: Engine
) -> None:
    for number in range(3):
        with db.begin() as session:
            audit.record(
                session=session, actor="system:test", action="x", object_type="x", object_id=number
            )
    schema.downgrade(engine, "0009")
    with engine.begin() as connection:
        connection.execute(
            text(
                "UPDATE audit_head SET seq = 2, "
                "hash = (SELECT hash FROM audit_events WHERE seq = 2)"
            )
        )
    schema.upgrade(engine, secret_key=TEST_SECRET)
    with db() as session:
        result = verification.verify_chain(session=session)
    assert (result.intact, result.checked) == (False, 2)
    assert "seal does not match" in (result.problem or "")
