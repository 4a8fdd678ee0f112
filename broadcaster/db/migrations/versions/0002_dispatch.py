"""Dispatch: batches (the outbox), progress counters, receipt tallies, e-mail bounces.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 04:05:24.212624
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "receipt_tallies",
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("provider", "outcome", name=op.f("pk_receipt_tallies")),
    )
    op.create_table(
        "alert_progress",
        sa.Column("alert_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["alert_id"], ["alerts.id"], name=op.f("fk_alert_progress_alert_id_alerts")
        ),
        sa.PrimaryKeyConstraint("alert_id", "channel", "status", name=op.f("pk_alert_progress")),
    )
    op.create_table(
        "dispatch_batches",
        sa.Column("alert_id", sa.Integer(), nullable=False),
        sa.Column("batch_no", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("next_run_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("enqueued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("runs", sa.Integer(), nullable=False),
        sa.CheckConstraint("state IN ('queued', 'done')", name=op.f("ck_dispatch_batches_state")),
        sa.ForeignKeyConstraint(
            ["alert_id"], ["alerts.id"], name=op.f("fk_dispatch_batches_alert_id_alerts")
        ),
        sa.PrimaryKeyConstraint("alert_id", "batch_no", name=op.f("pk_dispatch_batches")),
    )
    with op.batch_alter_table("dispatch_batches", schema=None) as batch_op:
        batch_op.create_index(
            "ix_dispatch_batches_state_next_run_at", ["state", "next_run_at"], unique=False
        )

    with op.batch_alter_table("contact_points", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("bounces", sa.SmallInteger(), nullable=False, server_default="0")
        )

    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("batch_no", sa.Integer(), nullable=False, server_default="0"))
        batch_op.drop_index(batch_op.f("ix_deliveries_alert_id_status"))
        batch_op.create_index(
            "ix_deliveries_alert_id_batch_no", ["alert_id", "batch_no"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_deliveries_alert_id_batch_no")
        batch_op.create_index(
            batch_op.f("ix_deliveries_alert_id_status"), ["alert_id", "status"], unique=False
        )
        batch_op.drop_column("batch_no")

    with op.batch_alter_table("contact_points", schema=None) as batch_op:
        batch_op.drop_column("bounces")

    with op.batch_alter_table("dispatch_batches", schema=None) as batch_op:
        batch_op.drop_index("ix_dispatch_batches_state_next_run_at")

    op.drop_table("dispatch_batches")
    op.drop_table("alert_progress")
    op.drop_table("receipt_tallies")
