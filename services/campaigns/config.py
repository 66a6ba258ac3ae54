from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.outbox import Subscriber
from shared.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CAMPAIGNS_", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///./data/campaigns.sqlite3"

    # A deadline must lie at least this far after submission and launch. Production keeps a day; tests lower
    # it to a second or two so that a real deadline (not a back door) passes while the test waits.
    min_campaign_duration_seconds: int = Field(default=24 * 3600, ge=1)
    max_campaign_duration_seconds: int = Field(default=90 * 24 * 3600, ge=1)
    # A reservation the pledges service never confirms is released after this long by the sweeper.
    reservation_ttl_seconds: int = Field(default=15 * 60, ge=1)
    # The deadline scheduler and the reservation sweeper poll the database this often (every replica polls;
    # the database decides who does each piece of work).
    scheduler_enabled: bool = True
    scheduler_poll_seconds: float = Field(default=5.0, gt=0)
    scheduler_batch_size: int = Field(default=100, ge=1)

    # Where the outbox relay delivers this service's events (`campaign.closed`, `tier.terms_changed`).
    event_relay_enabled: bool = True
    pledges_events_url: str = "http://127.0.0.1:8002/internal/events"

    def event_subscribers(self) -> list[Subscriber]:
        return [
            Subscriber(
                name="pledges",
                url=self.pledges_events_url,
                event_types=frozenset({"campaign.closed", "tier.terms_changed"}),
            )
        ]
