from __future__ import annotations

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from shared.outbox import Subscriber
from shared.settings import Environment, ServiceSettings

DEV_STRIPE_API_KEY = "sk_test_local"


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PLEDGES_", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///./data/pledges.sqlite3"

    # Other services (internal routes, service token).
    campaigns_url: str = "http://127.0.0.1:8001"
    refunds_url: str = "http://127.0.0.1:8003"
    # Campaign facts that do not change once live (funding model, currency, creator) are cached this long.
    campaign_cache_seconds: float = Field(default=30.0, ge=0)
    # After campaigns refuses a pledge for its cap (or a sold-out tier), pledges no better than it are refused
    # here for this long, without a pledge row or a call (0: always ask). Capacity comes back only through
    # releases, so this is how stale a "full" answer may be.
    full_campaign_cache_seconds: float = Field(default=1.0, ge=0)

    # Stripe. `stripe_api_base` points the SDK at the local Stripe-compatible server in development and tests.
    stripe_api_key: SecretStr | None = None
    stripe_api_base: str | None = None
    stripe_webhook_secret: SecretStr | None = None
    stripe_timeout_seconds: float = Field(default=15.0, gt=0)
    stripe_max_network_retries: int = Field(default=2, ge=0, le=5)
    stripe_max_connections: int = Field(default=200, ge=1)

    # The pledge saga: a driver (request, sweeper or charge run) holds a pledge's lease while it works on it;
    # a lease left by a dead process expires and the sweeper takes the pledge over.
    saga_lease_seconds: float = Field(default=60.0, gt=0)

    # Background worker (sweeper, charge run, grace expiry, webhook inbox); every replica runs one.
    worker_enabled: bool = True
    worker_poll_seconds: float = Field(default=1.0, gt=0)
    worker_batch_size: int = Field(default=50, ge=1)
    worker_concurrency: int = Field(default=8, ge=1)

    # Charge run after an all-or-nothing campaign succeeded: off-session charges per second (per replica) and a
    # retry schedule inside the grace period a backer has to supply a new payment method.
    charge_rate_per_second: float = Field(default=20.0, gt=0)
    grace_period_seconds: float = Field(default=7 * 24 * 3600, gt=0)
    charge_retry_seconds: float = Field(default=24 * 3600, gt=0)

    # How long backers have to accept or withdraw after a material change of their tier's terms.
    consent_window_seconds: float = Field(default=14 * 24 * 3600, gt=0)

    # Where the outbox relay delivers this service's events (`pledge.refunded`); every replica runs one. The
    # campaigns service's inbox, by default the one at `campaigns_url`.
    event_relay_enabled: bool = True
    campaigns_events_url: str | None = None

    def event_subscribers(self) -> list[Subscriber]:
        url = self.campaigns_events_url or f"{self.campaigns_url.rstrip('/')}/internal/events"
        return [Subscriber(name="campaigns", url=url, event_types=frozenset({"pledge.refunded"}))]

    @model_validator(mode="after")
    def _stripe_credentials(self) -> Settings:
        if self.environment is Environment.PRODUCTION:
            if self.stripe_api_key is None or self.stripe_webhook_secret is None:
                raise ValueError("production settings need PLEDGES_STRIPE_API_KEY and PLEDGES_STRIPE_WEBHOOK_SECRET")
        else:
            if self.stripe_api_key is None:
                self.stripe_api_key = SecretStr(DEV_STRIPE_API_KEY)
            if self.stripe_webhook_secret is None:
                self.stripe_webhook_secret = SecretStr("whsec_dev_local_only_0123456789abcdef")
        return self
