from __future__ import annotations

import pytest

from cathouse.auth.passwords import Passwords, common_passwords, password_problem
from cathouse.platform.settings import AuthSettings


def test_the_shipped_blocklist_is_loaded() -> None:
    assert len(common_passwords()) > 19_000
    assert "qwerty" in common_passwords()


@pytest.mark.parametrize(
    ("password", "problem"),
    [
        ("1234567", "at least 8"),
        ("Password1", "too common"),
        ("ana@example.com", "your email"),
        ("correct horse battery staple", None),
        ("ÉÉÉÉÉÉÉÉ", None),
        ("🐈" * 8, None),
    ],
)
def test_policy(password: str, problem: str | None) -> None:
    found = password_problem(password, context=("ana@example.com",))
    assert (found is None) if problem is None else (problem in (found or ""))


async def test_hashes_are_argon2id_at_owasp_parameters_and_verify_after_normalisation() -> None:
    passwords = Passwords(AuthSettings())
    hashed = await passwords.hash("Cafe\u0301 au lait tonight")  # decomposed é
    assert hashed.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert (await passwords.verify("Café au lait tonight", hashed))[0] is True  # composed é
    assert (await passwords.verify("cafe au lait tonight", hashed))[0] is False
