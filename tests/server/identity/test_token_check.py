"""The bearer token check's own path (``identity.service._own_claims``): a token this
server issued is read by one HMAC with PyJWT's answer, and anything else (another
header, a signature in another spelling or of another key, claims it does not write)
is left to PyJWT, which refuses what it always refused."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime

import jwt
import pytest

from server.identity.models import User
from server.identity.service import _own_claims, decode_token, issue_token
from server.kit.errors import Unauthorized
from shared.enums import Role

KEY = "token-check-key-" + "k" * 32
NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _token() -> tuple[uuid.UUID, str]:
    user = User(id=uuid.uuid4(), login="t", name="t", role=Role.CUSTOMER, secret_hash="")
    return user.id, issue_token(user, key=KEY, now=NOW, ttl_s=3600)[0]


def test_an_issued_token_reads_as_pyjwt_reads_it() -> None:
    uid, token = _token()
    claims = _own_claims(token, KEY)
    assert claims is not None
    assert claims == jwt.decode(token, KEY, algorithms=["HS256"], options={"verify_exp": False})
    checked = decode_token(token, key=KEY, now=NOW)
    assert checked.user_id == uid and checked.expires_at == NOW.timestamp() + 3600


def test_anything_else_is_pyjwts_and_refused_as_before() -> None:
    _, token = _token()
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    other_key = jwt.encode(claims, "x" * 40, "HS256")
    extra = {**claims, "aud": "elsewhere"}
    with_aud = jwt.encode(extra, KEY, algorithm="HS256")
    none_alg = _b64(b'{"alg":"none","typ":"JWT"}') + f".{payload}."
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    for forged in (other_key, f"{header}.{payload}.{flipped}", none_alg, f"{header}.{payload}"):
        assert _own_claims(forged, KEY) is None
        with pytest.raises(Unauthorized):
            decode_token(forged, key=KEY, now=NOW)
    assert _own_claims(with_aud, KEY) is None  # a claim issue_token never writes
    with pytest.raises(Unauthorized):  # PyJWT: an audience nobody asked for
        decode_token(with_aud, key=KEY, now=NOW)


def test_a_signature_in_another_spelling_is_pyjwts_to_refuse() -> None:
    _, token = _token()
    header, payload, signature = token.split(".")
    # the last character's two low bits are padding: the same digest, not its spelling
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    spare = alphabet[alphabet.index(signature[-1]) ^ 1]
    other = f"{header}.{payload}.{signature[:-1]}{spare}"
    assert _own_claims(other, KEY) is None
    with pytest.raises(Unauthorized):  # PyJWT refuses it, as before
        decode_token(other, key=KEY, now=NOW)
