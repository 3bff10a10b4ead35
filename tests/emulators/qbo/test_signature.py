"""``intuit-signature`` against the published vectors (reference section 8)."""

from __future__ import annotations

import pytest

from emulators.qbo import sign, verify

VECTOR_1_BODY = (
    b'{"eventNotifications":[{"realmId":"1185883450","dataChangeEvent":{"entities":[{"name":'
    b'"Customer","id":"1","operation":"Create","lastUpdated":"2015-10-05T14:42:19-0700"}]}}]}'
)
VECTOR_4_BODY = (
    b'[{"specversion":"1.0","id":"d1a3aedd-9670-41bf-a4f9-c148a1cc4e03","source":'
    b'"intuit.dsnBgbseACLLRZNxo2dfc4evmEJdxde58xeeYcZliOU=","type":"qbo.class.created.v1",'
    b'"time":"2025-10-07T19:59:07.034359333Z","intuitentityid":"1234","intuitaccountid":"310687"}]'
)
VECTORS = [
    (
        "b5771f19b12ddb4bcdb9f08bdc50bc63878a",
        VECTOR_1_BODY,
        "JC2GUwciPmRBwEO7WvrRmKqu9tGOKL8FFallocTFi8Q=",
    ),
    ("verify_me", b'{"stuff":"5"}', "nfPLN16u3vMvv08ghDs+dOkLuirEVDy5wAeG/lmM2OA="),
    ("12345", b"abcd", "gfTuE5fLxnstOq8ln4LNWZfn24cg8FVB6PBv455lfzg="),
    (
        "b5771f19b12ddb4bcdb9f08bdc50bc63878a",
        VECTOR_4_BODY,
        "1lzsg+Xzy5KEwYeo0OfpUWUYFyV8YgWyrakbLir96Wk=",
    ),
]


def test_vector_bodies_have_the_published_lengths() -> None:
    assert len(VECTOR_1_BODY) == 173
    assert len(VECTOR_4_BODY) == 251


@pytest.mark.parametrize(("token", "body", "expected"), VECTORS)
def test_signs_published_vectors(token: str, body: bytes, expected: str) -> None:
    assert sign(token, body) == expected
    assert verify(token, body, expected)


def test_wrong_signature_fails() -> None:
    assert not verify("b5771f19b12ddb4bcdb9f08bdc50bc63878a", VECTOR_1_BODY, "1234")


def test_empty_body_with_vector_2_signature_fails() -> None:
    assert not verify("verify_me", b"", "nfPLN16u3vMvv08ghDs+dOkLuirEVDy5wAeG/lmM2OA=")


@pytest.mark.parametrize("header", [None, "", "not base64 !!"])
def test_missing_or_garbled_header_fails(header: str | None) -> None:
    assert not verify("12345", b"abcd", header)


def test_one_changed_byte_or_key_fails() -> None:
    assert not verify("12345", b"abce", "gfTuE5fLxnstOq8ln4LNWZfn24cg8FVB6PBv455lfzg=")
    assert not verify("12346", b"abcd", "gfTuE5fLxnstOq8ln4LNWZfn24cg8FVB6PBv455lfzg=")
