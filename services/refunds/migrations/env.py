from services.refunds.config import Settings
from services.refunds.models import Base
from shared.migrations import run_env

run_env(Base.metadata, default_url=Settings().database_url)
