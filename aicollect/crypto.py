"""Token encryption at rest: AES-256-GCM with a key id, several keys for rotation.

``AICOLLECT_TOKEN_KEYS`` is ``kid:base64key,kid:base64key`` (newest first, 32-byte keys).
A sealed value is ``<kid>:<base64(nonce || ciphertext+tag)>``; the row's identity is the
associated data, so a ciphertext copied to another row does not decrypt. Only the
integration process imports this module.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES = 12


class KeyConfigError(ValueError):
    """AICOLLECT_TOKEN_KEYS is malformed (the message never contains key material)."""


class DecryptError(Exception):
    """A sealed value could not be opened: unknown key id, tampering, or wrong identity."""


@dataclass(frozen=True)
class _Key:
    kid: str
    aead: AESGCM


def parse_keys(spec: str) -> list[tuple[str, bytes]]:
    keys: list[tuple[str, bytes]] = []
    seen: set[str] = set()
    for position, part in enumerate(p.strip() for p in spec.split(",") if p.strip()):
        kid, sep, encoded = part.partition(":")
        if not sep or not kid or not kid.isalnum():
            raise KeyConfigError(
                f"AICOLLECT_TOKEN_KEYS entry {position + 1} must be 'kid:base64key' "
                "with an alphanumeric kid"
            )
        try:
            raw = base64.b64decode(
                encoded + "=" * (-len(encoded) % 4), altchars=b"-_", validate=True
            )
        except (binascii.Error, ValueError):
            raise KeyConfigError(f"AICOLLECT_TOKEN_KEYS key '{kid}' is not base64") from None
        if len(raw) != 32:
            raise KeyConfigError(f"AICOLLECT_TOKEN_KEYS key '{kid}' must be 32 bytes (AES-256)")
        if kid in seen:
            raise KeyConfigError(f"AICOLLECT_TOKEN_KEYS lists key id '{kid}' twice")
        seen.add(kid)
        keys.append((kid, raw))
    if not keys:
        raise KeyConfigError("AICOLLECT_TOKEN_KEYS has no keys")
    return keys


class TokenCipher:
    """Seals with the newest key; opens with any configured key."""

    def __init__(self, keys: list[tuple[str, bytes]]) -> None:
        if not keys:
            raise KeyConfigError("at least one key is required")
        self._keys = [_Key(kid, AESGCM(raw)) for kid, raw in keys]
        self._by_kid = {k.kid: k for k in self._keys}

    @classmethod
    def from_spec(cls, spec: str) -> TokenCipher:
        return cls(parse_keys(spec))

    @property
    def current_kid(self) -> str:
        return self._keys[0].kid

    def seal(self, plaintext: str, identity: str) -> str:
        key = self._keys[0]
        nonce = os.urandom(NONCE_BYTES)
        ct = key.aead.encrypt(nonce, plaintext.encode(), identity.encode())
        return f"{key.kid}:{base64.urlsafe_b64encode(nonce + ct).decode()}"

    def open(self, sealed: str, identity: str) -> str:
        kid, sep, body = sealed.partition(":")
        key = self._by_kid.get(kid)
        if not sep or key is None:
            raise DecryptError(f"no configured key with id '{kid}'")
        try:
            blob = base64.urlsafe_b64decode(body)
            return key.aead.decrypt(
                blob[:NONCE_BYTES], blob[NONCE_BYTES:], identity.encode()
            ).decode()
        except (InvalidTag, binascii.Error, ValueError):
            raise DecryptError("sealed value failed authentication") from None

    def key_id_of(self, sealed: str) -> str:
        return sealed.partition(":")[0]

    def has_key(self, kid: str) -> bool:
        return kid in self._by_kid

    def needs_rotation(self, sealed: str) -> bool:
        return self.key_id_of(sealed) != self.current_kid

    def reseal(self, sealed: str, identity: str) -> str:
        return self.seal(self.open(sealed, identity), identity)
