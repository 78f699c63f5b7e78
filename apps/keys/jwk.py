"""JSON Web Keys for RSA public keys, and their RFC 7638 thumbprints (our ``kid``)."""

from __future__ import annotations

import base64
import hashlib
import json

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

# RFC 7638 section 3.2: the required members of an RSA JWK, and only those, are hashed.
_THUMBPRINT_MEMBERS = {"RSA": ("e", "kty", "n")}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_uint(value: int) -> str:
    # RFC 7518 section 6.3.1: big-endian, minimal length, no leading zero octets.
    return b64url(value.to_bytes((value.bit_length() + 7) // 8 or 1, "big"))


def rsa_public_jwk(public_key: RSAPublicKey) -> dict[str, str]:
    numbers = public_key.public_numbers()
    return {"kty": "RSA", "n": _b64url_uint(numbers.n), "e": _b64url_uint(numbers.e)}


def jwk_thumbprint(jwk: dict[str, str]) -> str:
    """RFC 7638 SHA-256 thumbprint, base64url without padding."""
    members = _THUMBPRINT_MEMBERS.get(jwk.get("kty", ""))
    if members is None:
        raise ValueError(f"unsupported kty {jwk.get('kty')!r}")
    canonical = json.dumps(
        {name: jwk[name] for name in members}, separators=(",", ":"), sort_keys=True
    )
    return b64url(hashlib.sha256(canonical.encode("utf-8")).digest())
