from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import CommonSettings


class Settings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore")

    campaigns_url: str = "http://127.0.0.1:8001"
    pledges_url: str = "http://127.0.0.1:8002"
    refunds_url: str = "http://127.0.0.1:8003"

    # Upstream calls: a connect timeout short enough to fail fast when a service is down, and a read
    # timeout that bounds a slow one (answered 504).
    upstream_connect_timeout_seconds: float = 2.0
    upstream_timeout_seconds: float = 15.0
    # An event stream (the request accepts text/event-stream) is quiet between events by design: it may stay
    # silent this long (the services send a keep-alive comment well within it) before the gateway drops it.
    stream_idle_timeout_seconds: float = 120.0
    upstream_max_connections: int = 200
    max_request_body_bytes: int = 10 * 1024 * 1024

    # Per client (token subject, or IP address when anonymous); `limits` notation, several joined by ';'.
    rate_limit: str = "50/second;1000/minute"
    rate_limit_enabled: bool = True
    # memory:// for one gateway; redis://host:6379 so several gateway replicas share the counters.
    rate_limit_storage_uri: str = "memory://"

    cors_allow_origins: list[str] = Field(default_factory=list)

    openapi_cache_seconds: float = 30.0
    health_timeout_seconds: float = 2.0

    def service_urls(self) -> dict[str, str]:
        return {"campaigns": self.campaigns_url, "pledges": self.pledges_url, "refunds": self.refunds_url}
