"""Password hashing with argon2; the cost comes from config so tests stay fast."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from knm.core.config import KnmConfig
from knm.core.errors import Invalid

MIN_PASSWORD_LENGTH = 8


def make_hasher(config: KnmConfig) -> PasswordHasher:
    return PasswordHasher(
        time_cost=config.argon2_time_cost,
        memory_cost=config.argon2_memory_cost,
        parallelism=config.argon2_parallelism,
    )


def verify(hasher: PasswordHasher, stored_hash: str, password: str) -> bool:
    try:
        return hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


# Verifying against a real hash when the user does not exist keeps response time from telling
# which usernames exist.
def dummy_hash(hasher: PasswordHasher) -> str:
    return hasher.hash("knm-no-such-user")


def check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise Invalid(f"password must be at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > 1024:
        raise Invalid("password must be at most 1024 characters")
