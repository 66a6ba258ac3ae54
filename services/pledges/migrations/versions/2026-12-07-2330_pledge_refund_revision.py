"""pledges.refund_revision: counts the changes of a pledge's refunded total, carried by pledge.refunded

Revision ID: 3d8f1a6c2b47
Revises: 69229b2a5b90
Create Date: 2026-12-07 23:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "3d8f1a6c2b47"
down_revision: str | None = "69229b2a5b90"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("pledges", schema=None) as batch_op:
        batch_op.add_column(sa.Column("refund_revision", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("pledges", schema=None) as batch_op:
        batch_op.drop_column("refund_revision")
