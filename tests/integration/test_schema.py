"""Migrations build exactly the schema the models describe, and run both ways."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect

from broadcaster import schema
from broadcaster.db import Base, make_sessionmaker
from broadcaster.reference import seed_reference_data
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
