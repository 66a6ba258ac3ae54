"""Reward tiers and their versioned terms.

Every change of terms creates a new immutable ``TierVersion`` (a new number and content hash); old versions
stay readable. On a live campaign a material change publishes ``tier.terms_changed`` so the pledges service
can ask the affected backers to accept or withdraw; on an approved campaign it sends the campaign back to
review.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from services.campaigns.access import Viewer
from services.campaigns.audit.service import audit_service
from services.campaigns.campaigns.exceptions import CampaignNotFound
from services.campaigns.campaigns.repository import CampaignRepository
from services.campaigns.disclosure.service import tier_availability
from services.campaigns.etag import check_if_match
from services.campaigns.lifecycle import CampaignAction, capabilities
from services.campaigns.models import ActorRole, AuditAction, Campaign, CampaignStatus, OutboxEvent, Tier, TierVersion
from services.campaigns.tiers import schemas
from services.campaigns.tiers.exceptions import (
    QuantityBelowClaimed,
    TierInUse,
    TierNotFound,
    TiersLocked,
    TierVersionNotFound,
)
from services.campaigns.tiers.repository import TierRepository, TierVersionRepository
from services.campaigns.tiers.terms import TermsContent, material_changes
from services.campaigns.vetting.exceptions import NotCampaignCreator
from services.campaigns.vetting.service import vetting_service
from shared.db import utcnow
from shared.outbox import publish

log = structlog.get_logger("campaigns.tiers")

TIER_TERMS_CHANGED = "tier.terms_changed"
TERMS_FIELDS = ("title", "description", "price_amount", "items", "estimated_delivery", "shipping")


def content_of(version: TierVersion) -> TermsContent:
    return TermsContent.from_parts(
        title=version.title,
        description=version.description,
        price_amount=version.price_amount,
        currency=version.currency,
        items=version.items,
        estimated_delivery=version.estimated_delivery,
        shipping=version.shipping,
    )


def new_version(
    tier: Tier, campaign: Campaign, number: int, content: TermsContent, reasons: Sequence[str]
) -> TierVersion:
    return TierVersion(
        id=uuid.uuid4(),
        tier_id=tier.id,
        campaign_id=campaign.id,
        version=number,
        title=content.title,
        description=content.description,
        price_amount=content.price_amount,
        currency=content.currency,
        items=content.items_json(),
        estimated_delivery=content.estimated_delivery,
        shipping=content.shipping_json(),
        content_hash=content.content_hash(),
        material=bool(reasons),
        change_reasons=list(reasons),
        created_at=utcnow(),
    )


class TierService:
    def present(self, campaign: Campaign, tier: Tier, version: TierVersion, viewer: Viewer) -> schemas.Tier:
        return schemas.Tier(
            id=tier.id,
            campaign_id=tier.campaign_id,
            position=tier.position,
            revision=tier.revision,
            current_version=tier.current_version,
            terms=schemas.TierVersion.model_validate(version),
            quantity_limit=tier.quantity_limit,
            per_backer_limit=tier.per_backer_limit,
            availability=tier_availability(campaign, tier, viewer),
            created_at=tier.created_at,
            updated_at=tier.updated_at,
        )

    async def _visible_campaign(self, session: AsyncSession, campaign_id: uuid.UUID, viewer: Viewer) -> Campaign:
        campaign = await CampaignRepository(session).get_visible(campaign_id, viewer)
        if campaign is None:
            raise CampaignNotFound(campaign_id)
        return campaign

    async def _owned_campaign_locked(self, session: AsyncSession, campaign_id: uuid.UUID, viewer: Viewer) -> Campaign:
        await self._visible_campaign(session, campaign_id, viewer)
        campaign = await CampaignRepository(session).get_locked(campaign_id)
        if campaign is None:
            raise CampaignNotFound(campaign_id)
        if not viewer.owns(campaign):
            raise NotCampaignCreator()
        if not capabilities(campaign.status).terms_editable:
            raise TiersLocked(campaign.status)
        return campaign

    async def list(
        self, session: AsyncSession, campaign_id: uuid.UUID, viewer: Viewer
    ) -> tuple[Campaign, list[tuple[Tier, TierVersion]]]:
        campaign = await self._visible_campaign(session, campaign_id, viewer)
        tiers = await TierRepository(session).list_for_campaigns([campaign.id])
        versions = await TierVersionRepository(session).current_versions(tiers)
        return campaign, [(tier, versions[tier.id]) for tier in tiers]

    async def get(
        self, session: AsyncSession, campaign_id: uuid.UUID, tier_id: uuid.UUID, viewer: Viewer
    ) -> tuple[Campaign, Tier, TierVersion]:
        campaign = await self._visible_campaign(session, campaign_id, viewer)
        tier = await TierRepository(session).get_in_campaign(campaign.id, tier_id)
        if tier is None:
            raise TierNotFound(tier_id)
        version = await TierVersionRepository(session).get_version(tier.id, tier.current_version)
        assert version is not None
        return campaign, tier, version

    async def versions(
        self, session: AsyncSession, campaign_id: uuid.UUID, tier_id: uuid.UUID, viewer: Viewer
    ) -> Sequence[TierVersion]:
        campaign = await self._visible_campaign(session, campaign_id, viewer)
        tier = await TierRepository(session).get_in_campaign(campaign.id, tier_id)
        if tier is None:
            raise TierNotFound(tier_id)
        return await TierVersionRepository(session).list_for_tier(tier.id)

    async def version(
        self, session: AsyncSession, campaign_id: uuid.UUID, tier_id: uuid.UUID, number: int, viewer: Viewer
    ) -> TierVersion:
        campaign = await self._visible_campaign(session, campaign_id, viewer)
        tier = await TierRepository(session).get_in_campaign(campaign.id, tier_id)
        if tier is None:
            raise TierNotFound(tier_id)
        version = await TierVersionRepository(session).get_version(tier.id, number)
        if version is None:
            raise TierVersionNotFound(tier_id, number)
        return version

    async def create(
        self, session: AsyncSession, campaign_id: uuid.UUID, viewer: Viewer, data: schemas.TierCreate
    ) -> tuple[Campaign, Tier, TierVersion]:
        campaign = await self._owned_campaign_locked(session, campaign_id, viewer)
        now = utcnow()
        tier = Tier(
            id=uuid.uuid4(),
            campaign_id=campaign.id,
            position=data.position,
            revision=1,
            current_version=1,
            quantity_limit=data.quantity_limit,
            per_backer_limit=data.per_backer_limit,
            reserved_quantity=0,
            committed_quantity=0,
            created_at=now,
            updated_at=now,
        )
        await TierRepository(session).add(tier)
        content = TermsContent.from_parts(
            title=data.title,
            description=data.description,
            price_amount=data.price_amount,
            currency=campaign.currency,
            items=[item.model_dump() for item in data.items],
            estimated_delivery=data.estimated_delivery,
            shipping=[rate.model_dump() for rate in data.shipping],
        )
        version = await TierVersionRepository(session).add(new_version(tier, campaign, 1, content, []))
        if campaign.status is CampaignStatus.APPROVED:
            await self._back_to_review(session, campaign, viewer, {"tier_id": str(tier.id), "change": "tier_added"})
        log.info("tier.created", campaign_id=str(campaign.id), tier_id=str(tier.id))
        return campaign, tier, version

    async def update(
        self,
        session: AsyncSession,
        campaign_id: uuid.UUID,
        tier_id: uuid.UUID,
        viewer: Viewer,
        data: schemas.TierUpdate,
        if_match: str,
    ) -> tuple[Campaign, Tier, TierVersion]:
        campaign = await self._owned_campaign_locked(session, campaign_id, viewer)
        tiers = TierRepository(session)
        versions = TierVersionRepository(session)
        tier = await tiers.get_locked(campaign.id, tier_id)
        if tier is None:
            raise TierNotFound(tier_id)
        check_if_match(if_match, tier.revision)
        current = await versions.get_version(tier.id, tier.current_version)
        assert current is not None

        sent = data.model_fields_set
        changed = False
        if "quantity_limit" in sent and data.quantity_limit != tier.quantity_limit:
            claimed = tier.reserved_quantity + tier.committed_quantity
            if data.quantity_limit is not None and data.quantity_limit < claimed:
                raise QuantityBelowClaimed()
            tier.quantity_limit = data.quantity_limit
            changed = True
        if "per_backer_limit" in sent and data.per_backer_limit != tier.per_backer_limit:
            tier.per_backer_limit = data.per_backer_limit
            changed = True
        if data.position is not None and data.position != tier.position:
            tier.position = data.position
            changed = True

        version = current
        old = content_of(current)
        new = self._merged_content(old, data)
        if new.content_hash() != current.content_hash:
            reasons = [reason.value for reason in material_changes(old, new)]
            version = await versions.add(new_version(tier, campaign, tier.current_version + 1, new, reasons))
            tier.current_version = version.version
            changed = True
            await self._terms_changed(session, campaign, tier, current, version, viewer)

        if changed:
            tier.revision += 1
            tier.updated_at = utcnow()
            await session.flush()
        return campaign, tier, version

    @staticmethod
    def _merged_content(old: TermsContent, data: schemas.TierUpdate) -> TermsContent:
        values: dict[str, Any] = {
            "title": old.title,
            "description": old.description,
            "price_amount": old.price_amount,
            "currency": old.currency,
            "items": old.items_json(),
            "estimated_delivery": old.estimated_delivery,
            "shipping": old.shipping_json(),
        }
        for field in TERMS_FIELDS:
            value = getattr(data, field)
            if field not in data.model_fields_set or value is None:
                continue
            if field == "items":
                value = [item.model_dump() for item in data.items or []]
            elif field == "shipping":
                value = [rate.model_dump() for rate in data.shipping or []]
            values[field] = value
        return TermsContent.from_parts(**values)

    async def _terms_changed(
        self,
        session: AsyncSession,
        campaign: Campaign,
        tier: Tier,
        previous: TierVersion,
        version: TierVersion,
        viewer: Viewer,
    ) -> None:
        details = {
            "tier_id": str(tier.id),
            "previous_version": previous.version,
            "new_version": version.version,
            "material": version.material,
            "reasons": version.change_reasons,
        }
        if campaign.status is CampaignStatus.LIVE:
            await audit_service.record(
                session,
                campaign.id,
                AuditAction.TERMS_CHANGED,
                actor_id=viewer.subject or "",
                actor_role=ActorRole.CREATOR,
                details=details,
            )
            if version.material:
                await publish(
                    session,
                    OutboxEvent,
                    TIER_TERMS_CHANGED,
                    {
                        "campaign_id": str(campaign.id),
                        "tier_id": str(tier.id),
                        "previous_version": previous.version,
                        "previous_content_hash": previous.content_hash,
                        "new_version": version.version,
                        "new_content_hash": version.content_hash,
                        "reasons": version.change_reasons,
                        "changed_at": version.created_at.isoformat(),
                    },
                )
                log.info("tier.terms_changed", campaign_id=str(campaign.id), tier_id=str(tier.id))
        elif campaign.status is CampaignStatus.APPROVED and version.material:
            await self._back_to_review(session, campaign, viewer, {**details, "change": "terms_changed"})

    async def _back_to_review(
        self, session: AsyncSession, campaign: Campaign, viewer: Viewer, details: dict[str, Any]
    ) -> None:
        change = await vetting_service.transition(
            session,
            campaign,
            CampaignAction.RETURN_TO_REVIEW,
            actor_id=viewer.subject or "",
            actor_role=ActorRole.CREATOR,
            reason="Material change after approval",
            details=details,
        )
        campaign.submitted_at = change.changed_at

    async def delete(self, session: AsyncSession, campaign_id: uuid.UUID, tier_id: uuid.UUID, viewer: Viewer) -> None:
        campaign = await self._owned_campaign_locked(session, campaign_id, viewer)
        if campaign.launched_at is not None:
            raise TierInUse()
        tiers = TierRepository(session)
        tier = await tiers.get_locked(campaign.id, tier_id)
        if tier is None:
            raise TierNotFound(tier_id)
        await tiers.delete(tier)
        if campaign.status is CampaignStatus.APPROVED:
            await self._back_to_review(session, campaign, viewer, {"tier_id": str(tier_id), "change": "tier_removed"})


tier_service = TierService()
