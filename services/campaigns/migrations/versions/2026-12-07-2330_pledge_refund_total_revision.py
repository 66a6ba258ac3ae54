"""pledge_refund_totals.revision: the pledges service's revision of the total kept (a failed refund lowers it)

Revision ID: 8e2c4b9d7a15
Revises: f4c5eb42cfb4
Create Date: 2026-12-07 23:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "8e2c4b9d7a15"
down_revision: str | None = "f4c5eb42cfb4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("pledge_refund_totals", schema=None) as batch_op:
        batch_op.add_column(sa.Column("revision", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("pledge_refund_totals", schema=None) as batch_op:
        batch_op.drop_column("revision")
