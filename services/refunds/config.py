from __future__ import annotations

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from shared.settings import Environment, ServiceSettings

DEV_STRIPE_API_KEY = "sk_test_local"


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="REFUNDS_", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///./data/refunds.sqlite3"

    # Other services (internal routes, service token).
    pledges_url: str = "http://127.0.0.1:8002"
    campaigns_url: str = "http://127.0.0.1:8001"

    # Stripe. `stripe_api_base` points at the local Stripe-compatible server in development and tests.
    stripe_api_key: SecretStr | None = None
    stripe_api_base: str | None = None
    stripe_webhook_secret: SecretStr | None = None
    stripe_timeout_seconds: float = Field(default=20.0, gt=0)
    stripe_refund_reason: str = "requested_by_customer"

    # The fleet-wide limit on Stripe requests (all replicas together; 0 switches it off). Stripe allows 25/s per
    # endpoint in test mode; 20 leaves room for the other services' calls.
    stripe_rate_limit_per_second: float = Field(default=20.0, ge=0)
    # How far ahead a replica may reserve send slots: small, so a replica that dies wastes little capacity.
    stripe_rate_limit_horizon_seconds: float = Field(default=0.25, gt=0)
    # Concurrent Stripe calls per replica. A replica sends at most this / latency calls a second: at Stripe's
    # ~0.3-0.5 s per refund, 64 reach live mode's 100/s; 32 capped the pipeline at ~230/s against the local
    # Stripe server (bench: 64 gave ~350/s). The fleet rate limit above is what protects Stripe.
    stripe_max_concurrency: int = Field(default=64, ge=1)
    # Calls per claim before an item is handed back (it is retried later, reconciled first).
    stripe_attempts_per_claim: int = Field(default=6, ge=1)
    # An idempotency key Stripe may have forgotten (Stripe keeps them 24 h): reconcile before any resend.
    stripe_idempotency_key_ttl_seconds: int = Field(default=23 * 3600, ge=1)

    # Workers: every replica runs them; the database decides who gets which item.
    worker_enabled: bool = True
    worker_claim_size: int = Field(default=100, ge=1)
    worker_lease_seconds: float = Field(default=120.0, gt=0)
    worker_poll_seconds: float = Field(default=0.25, gt=0)
    worker_retry_delay_seconds: float = Field(default=5.0, ge=0)
    worker_retry_max_delay_seconds: float = Field(default=300.0, ge=0)
    # Outcomes due to the pledges service are claimed this many at a time and sent in one call
    # (POST /internal/refund-outcomes takes up to 500).
    report_batch_size: int = Field(default=200, ge=1, le=500)
    # A refund still pending after this long without news (a lost webhook) is looked up at Stripe.
    pending_recheck_seconds: float = Field(default=600.0, gt=0)

    # Approval: a batch whose total in any currency is above this (minor units) needs a second operator.
    second_approval_threshold_amount: int = Field(default=500_000, ge=0)
    # Per-currency overrides, e.g. {"JPY": 50000} (JSON in the environment).
    second_approval_threshold_amounts: dict[str, int] = Field(default_factory=dict)

    # Preview: how many pledges are fetched concurrently for a list of pledge ids.
    preview_fetch_concurrency: int = Field(default=16, ge=1)
    max_batch_size: int = Field(default=200_000, ge=1)
    progress_window_seconds: float = Field(default=30.0, gt=0)
    sse_poll_seconds: float = Field(default=1.0, gt=0)

    @model_validator(mode="after")
    def _stripe_key(self) -> Settings:
        if self.stripe_api_key is None:
            if self.environment is Environment.PRODUCTION:
                raise ValueError("production settings need REFUNDS_STRIPE_API_KEY")
            self.stripe_api_key = SecretStr(DEV_STRIPE_API_KEY)
        return self

    def approval_threshold(self, currency: str) -> int:
        return self.second_approval_threshold_amounts.get(currency.upper(), self.second_approval_threshold_amount)
