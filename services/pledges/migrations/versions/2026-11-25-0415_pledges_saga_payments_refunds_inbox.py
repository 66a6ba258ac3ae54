"""pledges, accepted-terms snapshots, payment and refund history, campaign closures, Stripe webhook inbox

Revision ID: 69229b2a5b90
Revises: 7b5e25623115
Create Date: 2026-11-25 04:15:00.968075
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '69229b2a5b90'
down_revision: str | None = '7b5e25623115'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('campaign_closures',
    sa.Column('campaign_id', sa.Uuid(), nullable=False),
    sa.Column('outcome', sa.String(length=32), nullable=False),
    sa.Column('funding_model', sa.String(length=32), nullable=False),
    sa.Column('event_id', sa.Uuid(), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('campaign_id', name=op.f('pk_campaign_closures'))
    )
    op.create_table('pledges',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('backer_id', sa.String(length=200), nullable=False),
    sa.Column('idempotency_key', sa.String(length=255), nullable=False),
    sa.Column('request_fingerprint', sa.String(length=64), nullable=False),
    sa.Column('campaign_id', sa.Uuid(), nullable=False),
    sa.Column('tier_id', sa.Uuid(), nullable=False),
    sa.Column('terms_version', sa.Integer(), nullable=False),
    sa.Column('funding_model', sa.Enum('all_or_nothing', 'flexible', name='fundingmodel', native_enum=False, length=32), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('total_amount', sa.BigInteger(), nullable=False),
    sa.Column('tier_price_amount', sa.BigInteger(), nullable=False),
    sa.Column('shipping_amount', sa.BigInteger(), nullable=False),
    sa.Column('bonus_amount', sa.BigInteger(), nullable=False),
    sa.Column('shipping_region', sa.String(length=32), nullable=True),
    sa.Column('payment_method_input', sa.String(length=255), nullable=False),
    sa.Column('status', sa.Enum('reserving', 'authorizing', 'confirming', 'charging', 'compensating', 'active', 'collected', 'payment_failed', 'partially_refunded', 'refunded', 'rejected', 'declined', 'failed', 'canceled', 'dropped', name='pledgestatus', native_enum=False, length=32), nullable=False),
    sa.Column('final_status', sa.Enum('reserving', 'authorizing', 'confirming', 'charging', 'compensating', 'active', 'collected', 'payment_failed', 'partially_refunded', 'refunded', 'rejected', 'declined', 'failed', 'canceled', 'dropped', name='pledgestatus', native_enum=False, length=32), nullable=True),
    sa.Column('failure_code', sa.String(length=100), nullable=True),
    sa.Column('failure_status', sa.Integer(), nullable=True),
    sa.Column('failure_detail', sa.String(length=500), nullable=True),
    sa.Column('failure_extra', sa.JSON(), nullable=True),
    sa.Column('decline_code', sa.String(length=100), nullable=True),
    sa.Column('reservation_state', sa.Enum('none', 'pending', 'confirmed', 'released', name='reservationstate', native_enum=False, length=32), nullable=False),
    sa.Column('customer_key', sa.String(length=255), nullable=True),
    sa.Column('setup_intent_key', sa.String(length=255), nullable=True),
    sa.Column('payment_intent_key', sa.String(length=255), nullable=True),
    sa.Column('stripe_customer_id', sa.String(length=255), nullable=True),
    sa.Column('stripe_setup_intent_id', sa.String(length=255), nullable=True),
    sa.Column('stripe_payment_method_id', sa.String(length=255), nullable=True),
    sa.Column('stripe_payment_intent_id', sa.String(length=255), nullable=True),
    sa.Column('payment_method_detached', sa.Boolean(), nullable=False),
    sa.Column('payment_method_version', sa.Integer(), nullable=False),
    sa.Column('charged_amount', sa.BigInteger(), nullable=False),
    sa.Column('refunded_amount', sa.BigInteger(), nullable=False),
    sa.Column('disputed', sa.Boolean(), nullable=False),
    sa.Column('charged_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('charge_due_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('charge_attempts', sa.Integer(), nullable=False),
    sa.Column('grace_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('consent_status', sa.Enum('none', 'requested', 'accepted', 'withdrawn', name='consentstatus', native_enum=False, length=32), nullable=False),
    sa.Column('consent_version', sa.Integer(), nullable=True),
    sa.Column('consent_content_hash', sa.String(length=64), nullable=True),
    sa.Column('consent_reasons', sa.JSON(), nullable=True),
    sa.Column('consent_deadline_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cancel_reason', sa.String(length=200), nullable=True),
    sa.Column('canceled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('lease_token', sa.Uuid(), nullable=True),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pledges')),
    sa.UniqueConstraint('backer_id', 'idempotency_key', name=op.f('uq_pledges_backer_id_idempotency_key'))
    )
    with op.batch_alter_table('pledges', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pledges_backer_id'), ['backer_id', 'created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_pledges_campaign_id'), ['campaign_id', 'created_at', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_pledges_charge_due_at'), ['charge_due_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_pledges_status'), ['status', 'lease_until'], unique=False)
        batch_op.create_index(batch_op.f('ix_pledges_tier_id'), ['tier_id', 'terms_version'], unique=False)

    op.create_table('stripe_events',
    sa.Column('id', sa.String(length=255), nullable=False),
    sa.Column('type', sa.String(length=100), nullable=False),
    sa.Column('stripe_created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('processed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.String(length=500), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stripe_events'))
    )
    with op.batch_alter_table('stripe_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_stripe_events_processed_at'), ['processed_at', 'received_at'], unique=False)

    op.create_table('pledge_payments',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('pledge_id', sa.Uuid(), nullable=False),
    sa.Column('kind', sa.Enum('card_saved', 'charge', name='paymentkind', native_enum=False, length=32), nullable=False),
    sa.Column('stripe_id', sa.String(length=255), nullable=False),
    sa.Column('idempotency_key', sa.String(length=255), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('status', sa.String(length=40), nullable=False),
    sa.Column('decline_code', sa.String(length=100), nullable=True),
    sa.Column('stripe_event_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['pledge_id'], ['pledges.id'], name=op.f('fk_pledge_payments_pledge_id_pledges')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pledge_payments')),
    sa.UniqueConstraint('stripe_id', name=op.f('uq_pledge_payments_stripe_id'))
    )
    with op.batch_alter_table('pledge_payments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pledge_payments_pledge_id'), ['pledge_id'], unique=False)

    op.create_table('pledge_refunds',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('pledge_id', sa.Uuid(), nullable=False),
    sa.Column('stripe_refund_id', sa.String(length=255), nullable=True),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('status', sa.Enum('pending', 'succeeded', 'failed', 'canceled', name='refundstatus', native_enum=False, length=32), nullable=False),
    sa.Column('failure_reason', sa.String(length=200), nullable=True),
    sa.Column('batch_id', sa.Uuid(), nullable=True),
    sa.Column('source', sa.String(length=40), nullable=False),
    sa.Column('stripe_event_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['pledge_id'], ['pledges.id'], name=op.f('fk_pledge_refunds_pledge_id_pledges')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pledge_refunds'))
    )
    with op.batch_alter_table('pledge_refunds', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pledge_refunds_pledge_id'), ['pledge_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_pledge_refunds_stripe_refund_id'), ['stripe_refund_id'], unique=False)

    op.create_table('pledge_terms',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('pledge_id', sa.Uuid(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('content', sa.JSON(), nullable=False),
    sa.Column('accepted_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['pledge_id'], ['pledges.id'], name=op.f('fk_pledge_terms_pledge_id_pledges')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pledge_terms')),
    sa.UniqueConstraint('pledge_id', 'version', name=op.f('uq_pledge_terms_pledge_id_version'))
    )


def downgrade() -> None:
    op.drop_table('pledge_terms')
    with op.batch_alter_table('pledge_refunds', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pledge_refunds_stripe_refund_id'))
        batch_op.drop_index(batch_op.f('ix_pledge_refunds_pledge_id'))

    op.drop_table('pledge_refunds')
    with op.batch_alter_table('pledge_payments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pledge_payments_pledge_id'))

    op.drop_table('pledge_payments')
    with op.batch_alter_table('stripe_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_stripe_events_processed_at'))

    op.drop_table('stripe_events')
    with op.batch_alter_table('pledges', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pledges_tier_id'))
        batch_op.drop_index(batch_op.f('ix_pledges_status'))
        batch_op.drop_index(batch_op.f('ix_pledges_charge_due_at'))
        batch_op.drop_index(batch_op.f('ix_pledges_campaign_id'))
        batch_op.drop_index(batch_op.f('ix_pledges_backer_id'))

    op.drop_table('pledges')
    op.drop_table('campaign_closures')
