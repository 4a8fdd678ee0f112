"""Deliveries built for bulk: half of each page left free, and no foreign key to alerts.

Fill factor.
A delivery is updated twice on its way out (claimed, then sent). Written by COPY into
full pages, neither update finds room beside the old version, so each one also writes a
new entry into every index of the table. With room on the page the update is HOT (heap
only): no index is touched, and the dead version is pruned by the next visit to the page.
PostgreSQL only; SQLite has no such setting.

No foreign key to alerts. Planning writes a million deliveries in one statement, and the
key's check was a third of its time (1M rows: 4.3 s of 12 s, measured here). Only the
planner writes deliveries, for the alert it has just locked, and alerts are never deleted
(the audit trail refers to them), so the key guarded against nothing that can happen.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 06:20:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_constraint("fk_deliveries_alert_id_alerts", type_="foreignkey")
    if op.get_context().dialect.name == "postgresql":
        op.execute("ALTER TABLE deliveries SET (fillfactor = 50)")


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("ALTER TABLE deliveries RESET (fillfactor)")
    with op.batch_alter_table("deliveries") as batch:
        batch.create_foreign_key("fk_deliveries_alert_id_alerts", "alerts", ["alert_id"], ["id"])
