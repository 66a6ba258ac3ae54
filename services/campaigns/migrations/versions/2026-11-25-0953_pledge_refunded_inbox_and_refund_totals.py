"""inbox for events from the pledges service (pledge.refunded), per-pledge and per-campaign refunded totals

Revision ID: f4c5eb42cfb4
Revises: 7b3e9c2d4f10
Create Date: 2026-11-25 09:53:15.768388
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = 'f4c5eb42cfb4'
down_revision: str | None = '7b3e9c2d4f10'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('inbox_events',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('type', sa.String(length=100), nullable=False),
    sa.Column('source', sa.String(length=100), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('processed_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inbox_events'))
    )
    op.create_table('campaign_refund_totals',
    sa.Column('campaign_id', sa.Uuid(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('refunded_amount', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('refunded_amount >= 0', name=op.f('ck_campaign_refund_totals_refunded_amount_non_negative')),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_campaign_refund_totals_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('campaign_id', name=op.f('pk_campaign_refund_totals'))
    )
    op.create_table('pledge_refund_totals',
    sa.Column('pledge_id', sa.Uuid(), nullable=False),
    sa.Column('campaign_id', sa.Uuid(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('refunded_amount', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('refunded_amount >= 0', name=op.f('ck_pledge_refund_totals_refunded_amount_non_negative')),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_pledge_refund_totals_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('pledge_id', name=op.f('pk_pledge_refund_totals'))
    )
    with op.batch_alter_table('pledge_refund_totals', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pledge_refund_totals_campaign_id'), ['campaign_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('pledge_refund_totals', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pledge_refund_totals_campaign_id'))

    op.drop_table('pledge_refund_totals')
    op.drop_table('campaign_refund_totals')
    op.drop_table('inbox_events')
