"""Deliveries indexed by (alert_id, id): the delivery log's pages of one alert.

The auditors' log reads `WHERE alert_id = :a ... AND id > :after ORDER BY id LIMIT n`
(broadcaster/delivery_log.py). With no index in that order, PostgreSQL walks the primary
key from the first delivery ever written until it has n rows of the alert, so the first
page of a recent alert read every older delivery: 300 ms at 2.3 million rows, and growing
with the table. With it a page is n index entries (0.3 ms), and the first page of an
alert's failed deliveries reads only that alert's rows (200 ms -> 3-5 ms), measured by
`python -m benchmarks.delivery_log`. The planner costs a walk as if the alert's rows were
spread evenly over the table, so it takes the index only for an alert that holds a small
share of the table (it did at 4.7%, not at 10.9%): while a young table holds a few large
alerts it still walks for those, over a small table. The price: about 30 bytes a
delivery, and 5-8% on the time to plan an alert.

Built CONCURRENTLY on PostgreSQL: a plain CREATE INDEX holds a SHARE lock that stops
every insert and update of deliveries - the planner and every send - for the whole build,
and the table may hold tens of millions of rows within a year (0.6 s per 2.3 million
here, on a warm cache). A concurrent build cannot run inside a transaction, so it runs in
an autocommit block (`schema.upgrade` hands Alembic a connection it may commit on), which
commits the migrations before it first. A concurrent build that fails leaves
an invalid index behind: it is dropped before building, so running the migration again
repairs it. SQLite builds it the ordinary way.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28 10:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_deliveries_alert_id_id"


def upgrade() -> None:
    context = op.get_context()
    if context.dialect.name != "postgresql":
        op.create_index(INDEX, "deliveries", ["alert_id", "id"])
        return
    with context.autocommit_block():
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {INDEX}")
        op.create_index(INDEX, "deliveries", ["alert_id", "id"], postgresql_concurrently=True)


def downgrade() -> None:
    context = op.get_context()
    if context.dialect.name != "postgresql":
        op.drop_index(INDEX, table_name="deliveries")
        return
    with context.autocommit_block():
        op.drop_index(INDEX, table_name="deliveries", postgresql_concurrently=True)
