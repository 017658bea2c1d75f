from __future__ import annotations

import pytest

from cathouse.platform.crypto import DecryptionError, derive_key, seal, unseal


def test_sealed_data_opens_only_with_its_key_and_associated_data() -> None:
    key = derive_key("master key of at least thirty-two chars", "purpose/a")
    sealed = seal(key, b"secret", b"row-1")
    assert b"secret" not in sealed
    assert unseal(key, sealed, b"row-1") == b"secret"
    with pytest.raises(DecryptionError):
        unseal(key, sealed, b"row-2")
    with pytest.raises(DecryptionError):
        unseal(derive_key("master key of at least thirty-two chars", "purpose/b"), sealed, b"row-1")
    with pytest.raises(DecryptionError):
        unseal(key, sealed[:-1] + bytes([sealed[-1] ^ 1]), b"row-1")


def test_the_same_plaintext_seals_differently_each_time() -> None:
    key = derive_key("k" * 32, "p")
    assert seal(key, b"x", b"a") != seal(key, b"x", b"a")
