from services.pledges.config import Settings
from services.pledges.models import Base
from shared.migrations import run_env

run_env(Base.metadata, default_url=Settings().database_url)
