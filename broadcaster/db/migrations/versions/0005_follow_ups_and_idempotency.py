"""Follow-up alerts (CAP Update / Cancel referencing an alert) and Idempotency-Keys.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 08:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(
            sa.Column("msg_type", sa.String(length=8), nullable=False, server_default="alert")
        )
        batch.add_column(sa.Column("references_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_alerts_references_id_alerts"), "alerts", ["references_id"], ["id"]
        )
        batch.create_index(op.f("ix_alerts_references_id"), ["references_id"])
        batch.create_check_constraint(
            op.f("ck_alerts_msg_type"), "msg_type IN ('alert', 'update', 'cancel')"
        )
        batch.create_check_constraint(
            op.f("ck_alerts_follow_up_references"),
            "(msg_type = 'alert') = (references_id IS NULL)",
        )
    with op.batch_alter_table("alerts") as batch:
        batch.alter_column("msg_type", server_default=None)
    op.create_table(
        "idempotency_keys",
        sa.Column("operator_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("alert_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["alert_id"], ["alerts.id"], name=op.f("fk_idempotency_keys_alert_id_alerts")
        ),
        sa.ForeignKeyConstraint(
            ["operator_id"],
            ["operators.id"],
            name=op.f("fk_idempotency_keys_operator_id_operators"),
        ),
        sa.PrimaryKeyConstraint("operator_id", "key", name=op.f("pk_idempotency_keys")),
    )


def downgrade() -> None:
    op.drop_table("idempotency_keys")
    with op.batch_alter_table("alerts") as batch:
        batch.drop_constraint(op.f("ck_alerts_follow_up_references"), type_="check")
        batch.drop_constraint(op.f("ck_alerts_msg_type"), type_="check")
        batch.drop_index(op.f("ix_alerts_references_id"))
        batch.drop_constraint(op.f("fk_alerts_references_id_alerts"), type_="foreignkey")
        batch.drop_column("references_id")
        batch.drop_column("msg_type")
