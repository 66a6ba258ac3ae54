"""Settings base shared by every component. Each service subclasses it with its own env prefix."""

from __future__ import annotations

from enum import StrEnum

from pydantic import SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.auth import AuthConfig


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


# Development-only secrets, used when ENVIRONMENT is development or test and nothing else is set. A
# production process refuses to start with them (see the validator below).
DEV_JWT_SECRET = "dev-only-jwt-secret-change-me-0123456789abcdef"
DEV_SERVICE_SECRET = "dev-only-service-secret-change-me-0123456789"
DEV_ISSUER = "crowdfund-dev"
MIN_SECRET_LENGTH = 32  # an HS256 key shorter than the hash output weakens it (RFC 7518 section 3.2)


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", env_file=None)

    environment: Environment = Environment.DEVELOPMENT
    jwt_secret: SecretStr | None = None
    jwt_jwks_url: str | None = None
    jwt_issuer: str = DEV_ISSUER
    jwt_audience: str = "crowdfund"
    service_token_secret: SecretStr | None = None
    log_level: str = "INFO"
    log_json: bool = True

    @model_validator(mode="after")
    def _require_real_secrets_outside_development(self) -> CommonSettings:
        if self.environment is Environment.PRODUCTION:
            missing = []
            if self.jwt_secret is None and not self.jwt_jwks_url:
                missing.append("JWT_SECRET or JWT_JWKS_URL")
            if self.service_token_secret is None:
                missing.append("SERVICE_TOKEN_SECRET")
            if missing:
                raise ValueError(f"production settings need {', '.join(missing)}")
            dev = {DEV_JWT_SECRET, DEV_SERVICE_SECRET}
            for secret in (self.jwt_secret, self.service_token_secret):
                if secret is None:
                    continue
                if secret.get_secret_value() in dev:
                    raise ValueError("a development secret cannot be used in production")
                if len(secret.get_secret_value()) < MIN_SECRET_LENGTH:
                    raise ValueError(f"production secrets need at least {MIN_SECRET_LENGTH} characters")
        else:
            if self.jwt_secret is None and not self.jwt_jwks_url:
                self.jwt_secret = SecretStr(DEV_JWT_SECRET)
            if self.service_token_secret is None:
                self.service_token_secret = SecretStr(DEV_SERVICE_SECRET)
        return self

    def auth_config(self) -> AuthConfig:
        return AuthConfig(
            issuer=self.jwt_issuer,
            audience=self.jwt_audience,
            hs256_secret=self.jwt_secret.get_secret_value() if self.jwt_secret else None,
            jwks_url=self.jwt_jwks_url,
            service_secret=self.service_token_secret.get_secret_value() if self.service_token_secret else None,
        )


class ServiceSettings(CommonSettings):
    """What every service has: its database, its pool, timeouts for calls it makes."""

    database_url: str = "sqlite+aiosqlite:///./data/service.sqlite3"
    database_pool_size: int = 20  # the most connections a replica opens, all kept (no overflow: see shared/db.py)
    database_pool_timeout_seconds: float = 5.0  # waiting for a free connection longer than this is a 503
    database_pool_pre_ping: bool = False  # test each connection on checkout (costly on asyncpg; see shared/db.py)
    database_echo: bool = False
    http_timeout_seconds: float = 5.0
