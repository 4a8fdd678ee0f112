"""Alembic environment: runs on the connection handed over by broadcaster.db.migrate."""

from __future__ import annotations

from alembic import context

# Every domain's tables, registered on Base.metadata for autogenerate.
import broadcaster.alerts.models
import broadcaster.audit.models
import broadcaster.dispatch.models
import broadcaster.reference.models
import broadcaster.staff.models  # noqa: F401
import subscribers.models  # noqa: F401
from broadcaster.db.engine import Base, make_engine

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
        with engine.connect() as own:
            _run(own)
        engine.dispose()
    else:
        _run(connection)


def _run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things in place; batch mode rebuilds the table.
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported: run `broadcaster migrate`")
run_migrations_online()
