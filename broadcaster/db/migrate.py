"""Migrations, run from code: `broadcaster migrate`, the tests and the demo use this."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

from broadcaster.db.engine import audit_key_from_secret

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    return config


AUDIT_KEY_ATTRIBUTE = "audit_key"


def upgrade(engine: Engine, *, secret_key: str, revision: str = "head") -> None:
    """Bring the database at `engine` to `revision` (default: the newest). The secret key
    is for the migrations that seal what the audit trail holds (0010 seals its tip)."""
    config = alembic_config(engine)
    config.attributes[AUDIT_KEY_ATTRIBUTE] = audit_key_from_secret(secret_key)
    # A connection, not a transaction: Alembic begins and commits its own, so that a
    # migration may step out of it (0006 builds an index CONCURRENTLY, which PostgreSQL
    # refuses inside a transaction).
    with engine.connect() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def downgrade(engine: Engine, revision: str) -> None:
    config = alembic_config(engine)
    with engine.connect() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)
