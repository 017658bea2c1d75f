from cathouse.installation.models import Base
from cathouse.platform.migrations import run_env

run_env(Base.metadata)
