"""Cat House: the backend of a marketplace for gamification integrations."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("cathouse")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
