"""The audit trail's tip is sealed: an HMAC over its seq and hash under the audit key.

Whoever can write the database but lacks the key can no longer point the tip at an
earlier record after cutting the records after it. The key is derived from the secret key
and never stored, so this migration runs only through `broadcaster migrate` (or
`broadcaster.schema.upgrade`), which hands it over. The tip is sealed as it stands if it
is the newest record; a tip already moved off it is left unsealed, and the verifier says so.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

from broadcaster.audit.trail import UNSEALED, seal_of
from broadcaster.db.migrate import AUDIT_KEY_ATTRIBUTE

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    key = context.config.attributes.get(AUDIT_KEY_ATTRIBUTE)
    if not isinstance(key, bytes):
        raise RuntimeError(
            "this migration seals the audit trail with the key derived from WSP_SECRET_KEY: "
            "run it with `broadcaster migrate`"
        )
    with op.batch_alter_table("audit_head") as batch:
        batch.add_column(sa.Column("seal", sa.String(length=64), nullable=True))
    bind = op.get_bind()
    newest = bind.execute(
        sa.text("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")
    ).one_or_none()
    for head_id, seq, tip_hash in bind.execute(sa.text("SELECT id, seq, hash FROM audit_head")):
        # Only a tip that is the newest record is sealed: one already moved stays unsealed.
        agrees = (seq, tip_hash) == tuple(newest) if newest else seq == 0
        seal = seal_of(key=key, seq=seq, tip_hash=tip_hash) if agrees else UNSEALED
        bind.execute(
            sa.text("UPDATE audit_head SET seal = :seal WHERE id = :id"),
            {"seal": seal, "id": head_id},
        )
    with op.batch_alter_table("audit_head") as batch:
        batch.alter_column("seal", existing_type=sa.String(length=64), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("audit_head") as batch:
        batch.drop_column("seal")
