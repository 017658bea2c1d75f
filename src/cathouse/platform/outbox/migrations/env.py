from cathouse.platform.migrations import run_env
from cathouse.platform.outbox.models import Base

run_env(Base.metadata)
