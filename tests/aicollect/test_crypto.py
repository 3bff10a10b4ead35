"""Token encryption: round trip, identity binding, tamper detection, rotation, bad config."""

from __future__ import annotations

import base64
import os

import pytest

from aicollect.crypto import DecryptError, KeyConfigError, TokenCipher, parse_keys


def _key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def test_round_trip_and_fresh_nonce() -> None:
    cipher = TokenCipher.from_spec(f"k1:{_key()}")
    a = cipher.seal("refresh-token-value", "conn:1")
    b = cipher.seal("refresh-token-value", "conn:1")
    assert a != b  # a new nonce every time
    assert "refresh-token-value" not in a
    assert cipher.open(a, "conn:1") == "refresh-token-value"


def test_ciphertext_bound_to_row_identity() -> None:
    cipher = TokenCipher.from_spec(f"k1:{_key()}")
    sealed = cipher.seal("secret", "conn:1")
    with pytest.raises(DecryptError):
        cipher.open(sealed, "conn:2")


def test_tampering_detected() -> None:
    cipher = TokenCipher.from_spec(f"k1:{_key()}")
    kid, _, body = cipher.seal("secret", "id").partition(":")
    raw = bytearray(base64.urlsafe_b64decode(body))
    raw[-1] ^= 1
    with pytest.raises(DecryptError):
        cipher.open(f"{kid}:{base64.urlsafe_b64encode(bytes(raw)).decode()}", "id")


def test_rotation_old_key_still_opens_and_reseal_uses_newest() -> None:
    old, new = _key(), _key()
    before = TokenCipher.from_spec(f"old:{old}")
    sealed = before.seal("secret", "id")
    after = TokenCipher.from_spec(f"new:{new},old:{old}")
    assert after.needs_rotation(sealed)
    resealed = after.reseal(sealed, "id")
    assert after.key_id_of(resealed) == "new"
    assert TokenCipher.from_spec(f"new:{new}").open(resealed, "id") == "secret"
    with pytest.raises(DecryptError, match="no configured key"):
        TokenCipher.from_spec(f"new:{new}").open(sealed, "id")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "no keys"),
        ("nokid", "kid:base64key"),
        ("k1:!!!!", "not base64"),
        (f"k1:{base64.urlsafe_b64encode(b'short').decode()}", "32 bytes"),
        ("k1:{k},k1:{k}", "twice"),
    ],
)
def test_bad_key_config_is_refused_without_leaking(spec: str, message: str) -> None:
    key = _key()
    spec = spec.replace("{k}", key)
    with pytest.raises(KeyConfigError, match=message) as info:
        parse_keys(spec)
    assert key not in str(info.value)
