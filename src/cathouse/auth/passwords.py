"""Password hashing (argon2id through pwdlib) and the NIST SP 800-63B policy."""

from __future__ import annotations

import asyncio
import gzip
import unicodedata
from functools import lru_cache
from importlib.resources import files

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from cathouse.platform.settings import AuthSettings

MIN_LENGTH = 8
MAX_LENGTH = 128


def normalise(password: str) -> str:
    """NFKC, as SP 800-63B asks, so the same password typed on two keyboards hashes alike."""
    return unicodedata.normalize("NFKC", password)


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    data = files("cathouse.auth").joinpath("data/common-passwords.txt.gz").read_bytes()
    return frozenset(line.strip() for line in gzip.decompress(data).decode().splitlines() if line.strip())


def password_problem(password: str, *, context: tuple[str, ...] = ()) -> str | None:
    """Why a new password is refused, or None. Length and blocklist only: no composition rules."""
    # Lengths count the characters as typed, as the published schema does (NFKC may change them).
    if len(password) < MIN_LENGTH:
        return f"must be at least {MIN_LENGTH} characters"
    if len(password) > MAX_LENGTH:
        return f"must be at most {MAX_LENGTH} characters"
    lowered = normalise(password).lower()
    if lowered in common_passwords():
        return "is too common; choose one that is not on lists of leaked passwords"
    if any(part and lowered == part.lower() for part in context):
        return "must not be your email or name"
    return None


class Passwords:
    """Hashes and checks passwords off the event loop (argon2id costs tens of milliseconds)."""

    def __init__(self, settings: AuthSettings) -> None:
        self._hasher = PasswordHash(
            (
                Argon2Hasher(
                    memory_cost=settings.argon2_memory_kib,
                    time_cost=settings.argon2_iterations,
                    parallelism=settings.argon2_lanes,
                ),
            )
        )
        # Checked when the account does not exist or is locked, so every login failure costs
        # the same time and none reveals which it was.
        self._decoy = self._hasher.hash("decoy password for accounts that do not exist")

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, normalise(password))

    async def verify(self, password: str, password_hash: str) -> tuple[bool, str | None]:
        """Whether it matches, and a new hash when the stored one used weaker parameters."""
        return await asyncio.to_thread(self._hasher.verify_and_update, normalise(password), password_hash)

    async def waste_time(self, password: str) -> None:
        await asyncio.to_thread(self._hasher.verify, normalise(password), self._decoy)
