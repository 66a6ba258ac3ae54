"""The saga's write statements on a real database: on PostgreSQL the two-row steps are one statement run in
autocommit (``Database.one_statement``), on SQLite two statements in a transaction. Either way a step is all
or nothing: a lost lease writes neither row, a replayed step records its payment once."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, text

from services.pledges.models import (
    ConsentStatus,
    FundingModel,
    PaymentKind,
    PledgeStatus,
    ReservationState,
)
from services.pledges.pledges.repository import (
    PLEDGE_PAYMENTS,
    PLEDGE_TERMS,
    PLEDGES,
    compare_and_set,
    insert_pledge,
)
from shared.db import Database, utcnow


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url, pool_size=1)  # one connection: each test reuses it
    yield database
    await database.dispose()


def pledge_values(key: str = "key-1") -> tuple[dict[str, Any], dict[str, Any]]:
    now = utcnow()
    pledge_id = uuid.uuid4()
    values = {
        "id": pledge_id,
        "backer_id": "backer-1",
        "idempotency_key": key,
        "request_fingerprint": "f" * 64,
        "campaign_id": uuid.uuid4(),
        "tier_id": uuid.uuid4(),
        "terms_version": 1,
        "funding_model": FundingModel.ALL_OR_NOTHING,
        "currency": "USD",
        "total_amount": 2_500,
        "tier_price_amount": 2_500,
        "shipping_amount": 0,
        "bonus_amount": 0,
        "payment_method_input": "pm_card_visa",
        "status": PledgeStatus.AUTHORIZING,
        "reservation_state": ReservationState.PENDING,
        "payment_method_detached": False,
        "payment_method_version": 1,
        "charged_amount": 0,
        "refunded_amount": 0,
        "disputed": False,
        "charge_attempts": 0,
        "consent_status": ConsentStatus.NONE,
        "failure_extra": None,
        "lease_token": uuid.uuid4(),
        "lease_until": now + timedelta(seconds=30),
        "created_at": now,
        "updated_at": now,
    }
    terms = {
        "id": uuid.uuid4(),
        "pledge_id": pledge_id,
        "version": 1,
        "content_hash": "h" * 64,
        "content": {"title": "Early bird", "items": ["one game"]},
        "accepted_at": now,
    }
    return values, terms


def card_saved(pledge_id: uuid.UUID, stripe_id: str = "seti_123") -> dict[str, Any]:
    now = utcnow()
    return {
        "id": uuid.uuid4(),
        "pledge_id": pledge_id,
        "currency": "USD",
        "created_at": now,
        "updated_at": now,
        "decline_code": None,
        "stripe_event_at": None,
        "kind": PaymentKind.CARD_SAVED,
        "stripe_id": stripe_id,
        "idempotency_key": f"pledge:{pledge_id}:setup_intent",
        "amount": 0,
        "status": "succeeded",
    }


async def count(db: Database, table: Any, pledge_id: uuid.UUID) -> int:
    column = table.c.id if table is PLEDGES else table.c.pledge_id
    async with db.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).where(column == pledge_id))).scalar_one())


async def test_a_pledge_and_its_snapshot_are_inserted_together_once_per_key(db: Database) -> None:
    values, terms = pledge_values()
    async with db.one_statement() as conn:
        assert await insert_pledge(conn, values, terms)
    async with db.engine.connect() as conn:
        row = (await conn.execute(select(PLEDGE_TERMS).where(PLEDGE_TERMS.c.pledge_id == values["id"]))).one()
    assert row.content == terms["content"]
    assert row.version == 1

    # The same backer and key again (a concurrent request lost the race): nothing new, neither row.
    again, again_terms = pledge_values()
    async with db.one_statement() as conn:
        assert not await insert_pledge(conn, again, again_terms)
    assert await count(db, PLEDGES, again["id"]) == 0
    assert await count(db, PLEDGE_TERMS, again["id"]) == 0


async def test_a_step_applies_with_its_payment_only_under_the_lease(db: Database) -> None:
    values, terms = pledge_values()
    pledge_id, token = values["id"], values["lease_token"]
    async with db.one_statement() as conn:
        await insert_pledge(conn, values, terms)

    # Another driver's token: the pledge is untouched and the payment is not recorded.
    async with db.one_statement() as conn:
        applied = await compare_and_set(
            conn,
            pledge_id,
            token=uuid.uuid4(),
            expected=PledgeStatus.AUTHORIZING,
            values={"status": PledgeStatus.CONFIRMING, "stripe_setup_intent_id": "seti_123"},
            payment=card_saved(pledge_id),
        )
    assert not applied
    assert await count(db, PLEDGE_PAYMENTS, pledge_id) == 0

    async with db.one_statement() as conn:
        applied = await compare_and_set(
            conn,
            pledge_id,
            token=token,
            expected=PledgeStatus.AUTHORIZING,
            values={"status": PledgeStatus.CONFIRMING, "stripe_setup_intent_id": "seti_123"},
            payment=card_saved(pledge_id),
        )
    assert applied
    assert await count(db, PLEDGE_PAYMENTS, pledge_id) == 1
    async with db.engine.connect() as conn:
        row = (await conn.execute(select(PLEDGES).where(PLEDGES.c.id == pledge_id))).one()
    assert (row.status, row.stripe_setup_intent_id) == (PledgeStatus.CONFIRMING, "seti_123")

    # A resumed driver replays the step (same SetupIntent): the pledge moves, the payment is not doubled.
    async with db.one_statement() as conn:
        await compare_and_set(
            conn,
            pledge_id,
            token=token,
            expected=PledgeStatus.CONFIRMING,
            values={"status": PledgeStatus.CONFIRMING},
            payment=card_saved(pledge_id),
        )
    assert await count(db, PLEDGE_PAYMENTS, pledge_id) == 1


async def test_one_statement_commits_without_a_transaction_and_gives_the_connection_back_clean(
    db: Database,
) -> None:
    values, terms = pledge_values()
    async with db.one_statement() as conn:
        await insert_pledge(conn, values, terms)
        if db.dialect == "postgresql":
            # Autocommit: each statement is a transaction of its own, committed as it ran.
            first = (await conn.execute(text("SELECT txid_current()"))).scalar_one()
            second = (await conn.execute(text("SELECT txid_current()"))).scalar_one()
            assert second > first
    # The next user of the pooled connection gets an ordinary transaction: a rollback undoes its write.
    async with db.engine.connect() as conn:
        await conn.execute(PLEDGES.update().where(PLEDGES.c.id == values["id"]).values(total_amount=1))
        await conn.rollback()
    async with db.engine.connect() as conn:
        total = (await conn.execute(select(PLEDGES.c.total_amount).where(PLEDGES.c.id == values["id"]))).scalar_one()
    assert total == 2_500
