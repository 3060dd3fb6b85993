"""Tenant secrets at rest: Fernet tokens under keys derived from SECRET_KEY (ADR 0014).

`EncryptedString` columns encrypt on bind and decrypt on read, so every path (ORM, Core, the
raw pool, which applies the column types' processors) sees plaintext while the database only
holds ciphertext. Encryption uses SECRET_KEY; decryption also tries SECRET_KEY_FALLBACKS (a
MultiFernet), so a key can be rotated: set the new SECRET_KEY, keep the old one as a
fallback, run `appointments rotate-secrets`, then drop the fallback.

A value that no key decrypts (wrong SECRET_KEY, damaged row) is logged and read as absent
(None): the feature it configures then behaves as unconfigured (a webhook signature fails
with 401), never a 500 and never the ciphertext used as a secret.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy.engine import Dialect

from shared.config import get_settings

log = logging.getLogger(__name__)

# Changing either constant makes every stored secret unreadable: they are part of the format.
_HKDF_SALT = b"appointments/tenant-secrets"
_HKDF_INFO = b"fernet-v1"
# Ciphertext of a 255-character secret is about 420 characters; room for longer ones.
CIPHERTEXT_LENGTH = 1024


class SecretKeyError(Exception):
    """A stored secret that none of the configured keys decrypts."""


def derive_fernet_key(secret_key: str) -> bytes:
    """The Fernet key (urlsafe base64 of 32 bytes) that HKDF-SHA256 derives from `secret_key`."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=_HKDF_SALT, info=_HKDF_INFO)
    return base64.urlsafe_b64encode(hkdf.derive(secret_key.encode()))


def split_fallbacks(value: str) -> tuple[str, ...]:
    """SECRET_KEY_FALLBACKS: comma-separated old keys, blanks ignored."""
    return tuple(part.strip() for part in value.split(",") if part.strip())


@lru_cache(maxsize=16)
def keyring(secret_key: str, fallbacks: tuple[str, ...] = ()) -> MultiFernet:
    """Encrypt with `secret_key`'s key; decrypt with it or any of the fallbacks' keys."""
    keys = [secret_key, *(key for key in fallbacks if key != secret_key)]
    return MultiFernet([Fernet(derive_fernet_key(key)) for key in keys])


_override: MultiFernet | None = None


def current_keyring() -> MultiFernet:
    """The process's keys: set by `use_keys`, else SECRET_KEY + SECRET_KEY_FALLBACKS."""
    if _override is not None:
        return _override
    settings = get_settings()
    return keyring(settings.secret_key, split_fallbacks(settings.secret_key_fallbacks))


@contextmanager
def use_keys(secret_key: str, fallbacks: tuple[str, ...] = ()) -> Iterator[MultiFernet]:
    """Use these keys instead of the settings' within the block (rotation, tests)."""
    global _override
    previous = _override
    _override = keyring(secret_key, fallbacks)
    try:
        yield _override
    finally:
        _override = previous


def encrypt(plaintext: str) -> str:
    return current_keyring().encrypt(plaintext.encode()).decode("ascii")


@lru_cache(maxsize=4096)
def _decrypt(ring: MultiFernet, token: str) -> str:
    # Tokens are unique (random IV), so a token always decrypts to the same value: the cache
    # spares the hot paths (every Company load) the HMAC and AES work.
    return ring.decrypt(token.encode("ascii")).decode()


def decrypt(token: str) -> str:
    """The plaintext of `token`; SecretKeyError when no configured key decrypts it."""
    try:
        return _decrypt(current_keyring(), token)
    except (InvalidToken, UnicodeError, ValueError) as exc:
        raise SecretKeyError(
            "a stored secret does not decrypt with SECRET_KEY or SECRET_KEY_FALLBACKS"
        ) from exc


def rotate(token: str) -> str:
    """`token` re-encrypted under the current SECRET_KEY (SecretKeyError if unreadable)."""
    try:
        return current_keyring().rotate(token.encode("ascii")).decode("ascii")
    except (InvalidToken, UnicodeError, ValueError) as exc:
        raise SecretKeyError(
            "a stored secret does not decrypt with SECRET_KEY or SECRET_KEY_FALLBACKS"
        ) from exc


class EncryptedString(sa.TypeDecorator[str]):
    """A secret: plaintext in Python, a Fernet token in the database.

    Reading a token no configured key decrypts logs an error and yields None (absent).
    Never compare such a column with a value in SQL: each encryption differs.
    """

    impl = sa.String(CIPHERTEXT_LENGTH)
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return encrypt(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        try:
            return decrypt(str(value))
        except SecretKeyError as exc:
            log.error(
                "tenant secret unreadable, treated as absent: %s (was SECRET_KEY changed "
                "without listing the old key in SECRET_KEY_FALLBACKS?)",
                exc,
            )
            return None
