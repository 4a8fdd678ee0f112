"""Alerts are planned in chunks: when planning ended, and the planner's fenced lease.

Alerts dispatched before this were planned in one transaction: they count as planned at
the moment they started dispatching.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 15:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(sa.Column("planned_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column("planner_token", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("planner_seen_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE alerts SET planned_at = dispatched_at WHERE dispatched_at IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("planner_seen_at")
        batch.drop_column("planner_token")
        batch.drop_column("planned_at")
