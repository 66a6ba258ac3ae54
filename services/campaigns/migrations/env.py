from services.campaigns.config import Settings
from services.campaigns.models import Base
from shared.migrations import run_env

run_env(Base.metadata, default_url=Settings().database_url)
