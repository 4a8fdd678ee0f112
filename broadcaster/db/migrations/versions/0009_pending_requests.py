"""Pending requests: what a worker must do for a resident (a sign-up, a reminder, a code
or link to send), held in the database so that task messages carry only its id.

The broker is no store for personal data: the embedded one keeps every message it has
delivered, and none of them may carry an address, a code or a link. The id is random
(a notice's id is its SMSAPI idx), so it is not auto-incremented.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "pending_requests",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("contact_point_id", sa.Integer(), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "kind IN ('sign_up', 'reminder', 'notice')", name=op.f("ck_pending_requests_kind")
        ),
        sa.ForeignKeyConstraint(
            ["contact_point_id"],
            ["contact_points.id"],
            name=op.f("fk_pending_requests_contact_point_id_contact_points"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pending_requests")),
    )
    op.create_index(
        op.f("ix_pending_requests_contact_point_id"), "pending_requests", ["contact_point_id"]
    )
    op.create_index(op.f("ix_pending_requests_created_at"), "pending_requests", ["created_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_pending_requests_created_at"), table_name="pending_requests")
    op.drop_index(op.f("ix_pending_requests_contact_point_id"), table_name="pending_requests")
    op.drop_table("pending_requests")
