"""Deliveries leave half of each page free, so that a send's updates stay on their page.

A delivery is updated twice on its way out (claimed, then sent). Written by COPY into
full pages, neither update finds room beside the old version, so each one also writes a
new entry into every index of the table. With room on the page the update is HOT (heap
only): no index is touched, and the dead version is pruned by the next visit to the page.
PostgreSQL only; SQLite has no such setting.

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
    if op.get_context().dialect.name == "postgresql":
        op.execute("ALTER TABLE deliveries SET (fillfactor = 50)")


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("ALTER TABLE deliveries RESET (fillfactor)")
