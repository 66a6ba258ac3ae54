from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="REFUNDS_", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///./data/refunds.sqlite3"
