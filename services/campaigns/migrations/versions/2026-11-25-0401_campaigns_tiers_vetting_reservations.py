"""campaigns, tiers and their versions, vetting checklist, audit log, reservations and per-backer counts

Revision ID: e2bdfa666fab
Revises: 210aee24a93f
Create Date: 2026-11-25 04:01:28.029298
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = 'e2bdfa666fab'
down_revision: str | None = '210aee24a93f'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('campaigns',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('creator_id', sa.String(length=200), nullable=False),
    sa.Column('status', sa.Enum('draft', 'submitted', 'in_review', 'changes_requested', 'approved', 'rejected', 'live', 'suspended', 'succeeded', 'failed', 'canceled', name='campaignstatus', native_enum=False, length=32), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('risks_and_challenges', sa.Text(), nullable=True),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('goal_amount', sa.BigInteger(), nullable=False),
    sa.Column('cap_amount', sa.BigInteger(), nullable=True),
    sa.Column('uncapped', sa.Boolean(), nullable=False),
    sa.Column('funding_model', sa.Enum('all_or_nothing', 'flexible', name='fundingmodel', native_enum=False, length=32), nullable=False),
    sa.Column('deadline_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('budget', sa.JSON(), nullable=False),
    sa.Column('amount_disclosure', sa.Enum('exact', 'rounded', 'bands', 'percent_of_goal', 'hidden', name='amountdisclosure', native_enum=False, length=32), nullable=False),
    sa.Column('backer_count_disclosure', sa.Enum('exact', 'bands', 'hidden', name='backercountdisclosure', native_enum=False, length=32), nullable=False),
    sa.Column('availability_disclosure', sa.Enum('exact', 'coarse', name='availabilitydisclosure', native_enum=False, length=32), nullable=False),
    sa.Column('reveal_exact_after_close', sa.Boolean(), nullable=False),
    sa.Column('reserved_amount', sa.BigInteger(), nullable=False),
    sa.Column('committed_amount', sa.BigInteger(), nullable=False),
    sa.Column('backer_count', sa.BigInteger(), nullable=False),
    sa.Column('review_round', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('submitted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('reviewed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('launched_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint('NOT (uncapped AND cap_amount IS NOT NULL)', name=op.f('ck_campaigns_cap_decision_single')),
    sa.CheckConstraint('backer_count >= 0', name=op.f('ck_campaigns_backer_count_non_negative')),
    sa.CheckConstraint('committed_amount >= 0', name=op.f('ck_campaigns_committed_amount_non_negative')),
    sa.CheckConstraint('reserved_amount >= 0', name=op.f('ck_campaigns_reserved_amount_non_negative')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaigns'))
    )
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.create_index('ix_campaigns_created_at_id', ['created_at', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_campaigns_creator_id'), ['creator_id'], unique=False)
        batch_op.create_index('ix_campaigns_status_deadline_at', ['status', 'deadline_at'], unique=False)

    op.create_table('audit_entries',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('campaign_id', sa.Uuid(), nullable=False),
    sa.Column('action', sa.Enum('created', 'transition', 'checklist_recorded', 'terms_changed', 'exact_figures_read', name='auditaction', native_enum=False, length=32), nullable=False),
    sa.Column('actor_id', sa.String(length=200), nullable=False),
    sa.Column('actor_role', sa.Enum('creator', 'operator', 'service', 'system', name='actorrole', native_enum=False, length=16), nullable=False),
    sa.Column('from_status', sa.Enum('draft', 'submitted', 'in_review', 'changes_requested', 'approved', 'rejected', 'live', 'suspended', 'succeeded', 'failed', 'canceled', name='campaignstatus', native_enum=False, length=32), nullable=True),
    sa.Column('to_status', sa.Enum('draft', 'submitted', 'in_review', 'changes_requested', 'approved', 'rejected', 'live', 'suspended', 'succeeded', 'failed', 'canceled', name='campaignstatus', native_enum=False, length=32), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_audit_entries_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_entries'))
    )
    with op.batch_alter_table('audit_entries', schema=None) as batch_op:
        batch_op.create_index('ix_audit_entries_campaign_id_created_at', ['campaign_id', 'created_at'], unique=False)

    op.create_table('checklist_entries',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('campaign_id', sa.Uuid(), nullable=False),
    sa.Column('review_round', sa.Integer(), nullable=False),
    sa.Column('item', sa.Enum('identity_verified', 'prototype_evidence', 'budget_plausible', 'risks_disclosed', 'fulfilment_plan', name='checklistitemkind', native_enum=False, length=40), nullable=False),
    sa.Column('result', sa.Enum('passed', 'failed', name='checklistresult', native_enum=False, length=16), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('reviewer_id', sa.String(length=200), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_checklist_entries_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_checklist_entries')),
    sa.UniqueConstraint('campaign_id', 'review_round', 'item', name=op.f('uq_checklist_entries_campaign_id_review_round_item'))
    )
    with op.batch_alter_table('checklist_entries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_checklist_entries_campaign_id'), ['campaign_id'], unique=False)

    op.create_table('tiers',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('campaign_id', sa.Uuid(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('current_version', sa.Integer(), nullable=False),
    sa.Column('quantity_limit', sa.BigInteger(), nullable=True),
    sa.Column('per_backer_limit', sa.Integer(), nullable=True),
    sa.Column('reserved_quantity', sa.BigInteger(), nullable=False),
    sa.Column('committed_quantity', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('committed_quantity >= 0', name=op.f('ck_tiers_committed_quantity_non_negative')),
    sa.CheckConstraint('reserved_quantity >= 0', name=op.f('ck_tiers_reserved_quantity_non_negative')),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_tiers_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tiers'))
    )
    with op.batch_alter_table('tiers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tiers_campaign_id'), ['campaign_id'], unique=False)

    op.create_table('backer_tier_counts',
    sa.Column('tier_id', sa.Uuid(), nullable=False),
    sa.Column('backer_id', sa.String(length=200), nullable=False),
    sa.Column('active_count', sa.Integer(), nullable=False),
    sa.CheckConstraint('active_count >= 0', name=op.f('ck_backer_tier_counts_active_count_non_negative')),
    sa.ForeignKeyConstraint(['tier_id'], ['tiers.id'], name=op.f('fk_backer_tier_counts_tier_id_tiers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tier_id', 'backer_id', name=op.f('pk_backer_tier_counts'))
    )
    op.create_table('reservations',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('campaign_id', sa.Uuid(), nullable=False),
    sa.Column('tier_id', sa.Uuid(), nullable=False),
    sa.Column('tier_version', sa.Integer(), nullable=False),
    sa.Column('backer_id', sa.String(length=200), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('shipping_region', sa.String(length=32), nullable=True),
    sa.Column('status', sa.Enum('pending', 'confirmed', 'released', 'expired', name='reservationstatus', native_enum=False, length=16), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('confirmed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('released_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('release_reason', sa.String(length=200), nullable=True),
    sa.CheckConstraint('amount > 0', name=op.f('ck_reservations_amount_positive')),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_reservations_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tier_id'], ['tiers.id'], name=op.f('fk_reservations_tier_id_tiers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reservations'))
    )
    with op.batch_alter_table('reservations', schema=None) as batch_op:
        batch_op.create_index('ix_reservations_campaign_id_status', ['campaign_id', 'status'], unique=False)
        batch_op.create_index('ix_reservations_status_expires_at', ['status', 'expires_at'], unique=False)

    op.create_table('tier_versions',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tier_id', sa.Uuid(), nullable=False),
    sa.Column('campaign_id', sa.Uuid(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('price_amount', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('items', sa.JSON(), nullable=False),
    sa.Column('estimated_delivery', sa.String(length=7), nullable=False),
    sa.Column('shipping', sa.JSON(), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('material', sa.Boolean(), nullable=False),
    sa.Column('change_reasons', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_tier_versions_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tier_id'], ['tiers.id'], name=op.f('fk_tier_versions_tier_id_tiers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tier_versions')),
    sa.UniqueConstraint('tier_id', 'version', name=op.f('uq_tier_versions_tier_id_version'))
    )
    with op.batch_alter_table('tier_versions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tier_versions_campaign_id'), ['campaign_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_tier_versions_tier_id'), ['tier_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('tier_versions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tier_versions_tier_id'))
        batch_op.drop_index(batch_op.f('ix_tier_versions_campaign_id'))

    op.drop_table('tier_versions')
    with op.batch_alter_table('reservations', schema=None) as batch_op:
        batch_op.drop_index('ix_reservations_status_expires_at')
        batch_op.drop_index('ix_reservations_campaign_id_status')

    op.drop_table('reservations')
    op.drop_table('backer_tier_counts')
    with op.batch_alter_table('tiers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tiers_campaign_id'))

    op.drop_table('tiers')
    with op.batch_alter_table('checklist_entries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_checklist_entries_campaign_id'))

    op.drop_table('checklist_entries')
    with op.batch_alter_table('audit_entries', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_entries_campaign_id_created_at')

    op.drop_table('audit_entries')
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.drop_index('ix_campaigns_status_deadline_at')
        batch_op.drop_index(batch_op.f('ix_campaigns_creator_id'))
        batch_op.drop_index('ix_campaigns_created_at_id')

    op.drop_table('campaigns')
