from cathouse.platform.migrations import run_env
from cathouse.proxy.models import Base

run_env(Base.metadata)
