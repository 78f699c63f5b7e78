"""A tool's public keys: a pasted PEM (its ``kid`` is the RFC 7638 thumbprint) or a JWKS URL.

A JWKS URL is fetched with a short timeout and a size cap, cached, and refetched once when a
token names a ``kid`` the cached set lacks (the tool rotated), never more often than
``REFETCH_COOLDOWN_SECONDS``: an attacker sending random kids must not turn us into a fetch
loop against the tool.

Outside the sandbox the fetch is guarded against server-side request forgery: https only,
every address the host resolves to must be public (no private, loopback, link-local,
multicast, reserved or unspecified address), and the connection goes to the address we
checked (the name is not resolved a second time, so DNS rebinding cannot swap it), with the
certificate still verified against the host name. Redirects are not followed.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import json
import socket
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from django.conf import settings
from django.core.cache import cache
from jwt.algorithms import RSAAlgorithm

from apps.keys.jwk import jwk_thumbprint, rsa_public_jwk

FETCH_TIMEOUT_SECONDS = 5.0
MAX_JWKS_BYTES = 64 * 1024
CACHE_SECONDS = 300
REFETCH_COOLDOWN_SECONDS = 10

ERROR_NOT_RSA = "The public key must be an RSA public key in PEM form."
ERROR_KEY_TOO_SMALL = "The public key must be at least 2048 bits."
ERROR_BAD_PEM = "The public key is not a readable PEM public key."
ERROR_JWKS_HTTPS = "The JWKS URL must use https."
ERROR_JWKS_ADDRESS = "The JWKS URL's host resolves to a non-public address."
ERROR_JWKS_RESOLVE = "The JWKS URL's host does not resolve."
ERROR_JWKS_FETCH = "The tool's JWKS could not be fetched."
ERROR_JWKS_BODY = "The tool's JWKS is not a JSON key set."
ERROR_UNKNOWN_KID = "No key of the tool has this kid."
MIN_KEY_BITS = 2048


class ToolKeyError(ValueError):
    """A tool key could not be read or found; ``str(exc)`` says why (no secrets in it)."""


@functools.lru_cache(maxsize=256)
def public_key_from_pem(pem: str) -> tuple[RSAPublicKey, str]:
    """The RSA public key of a pasted PEM and its kid (RFC 7638 thumbprint). Cached per
    process by the PEM itself (a key is immutable; parsing it costs more than the check it
    serves), so a changed PEM is simply another entry."""
    try:
        key = serialization.load_pem_public_key(pem.strip().encode("ascii"))
    except (ValueError, UnicodeEncodeError, TypeError):
        raise ToolKeyError(ERROR_BAD_PEM) from None
    if not isinstance(key, RSAPublicKey):
        raise ToolKeyError(ERROR_NOT_RSA)
    if key.key_size < MIN_KEY_BITS:
        raise ToolKeyError(ERROR_KEY_TOO_SMALL)
    return key, jwk_thumbprint(rsa_public_jwk(key))


def guards_enabled() -> bool:
    return settings.INTERCHANGE_ENVIRONMENT != "sandbox"


def _public_addresses(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise ToolKeyError(ERROR_JWKS_RESOLVE) from None
    addresses = sorted({info[4][0] for info in infos})
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if not ip.is_global or ip.is_multicast or ip.is_reserved or ip.is_unspecified:
            raise ToolKeyError(ERROR_JWKS_ADDRESS)
    if not addresses:
        raise ToolKeyError(ERROR_JWKS_RESOLVE)
    return addresses


def check_jwks_url(url: str) -> None:
    """Refuse a JWKS URL the guards would refuse to fetch (used when registering, too)."""
    if not guards_enabled():
        return
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise ToolKeyError(ERROR_JWKS_HTTPS)
    _public_addresses(parts.hostname, parts.port or 443)


def _read_capped(body_iter: Any) -> bytes:
    chunks, size = [], 0
    for chunk in body_iter:
        size += len(chunk)
        if size > MAX_JWKS_BYTES:
            raise ToolKeyError(ERROR_JWKS_BODY)
        chunks.append(chunk)
    return b"".join(chunks)


def _fetch_guarded(url: str) -> bytes:
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise ToolKeyError(ERROR_JWKS_HTTPS)
    host, port = parts.hostname, parts.port or 443
    address = _public_addresses(host, port)[0]
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    pool = urllib3.HTTPSConnectionPool(
        address, port=port, server_hostname=host, assert_hostname=host,
        cert_reqs="CERT_REQUIRED", timeout=urllib3.Timeout(total=FETCH_TIMEOUT_SECONDS),
        retries=False,
    )
    try:
        response = pool.request(
            "GET", path, headers={"Host": parts.netloc, "Accept": "application/json"},
            redirect=False, preload_content=False,
        )
        if response.status != 200:
            raise ToolKeyError(ERROR_JWKS_FETCH)
        return _read_capped(response.stream(8192))
    except urllib3.exceptions.HTTPError:
        raise ToolKeyError(ERROR_JWKS_FETCH) from None
    finally:
        pool.close()


def _fetch_sandbox(url: str) -> bytes:
    try:
        with requests.get(url, timeout=FETCH_TIMEOUT_SECONDS, allow_redirects=False,
                          stream=True, headers={"Accept": "application/json"}) as response:
            if response.status_code != 200:
                raise ToolKeyError(ERROR_JWKS_FETCH)
            return _read_capped(response.iter_content(8192))
    except requests.RequestException:
        raise ToolKeyError(ERROR_JWKS_FETCH) from None


def fetch_jwks(url: str) -> dict[str, Any]:
    """GET the key set at ``url`` (guarded outside the sandbox); a dict with a ``keys`` list."""
    body = _fetch_guarded(url) if guards_enabled() else _fetch_sandbox(url)
    try:
        key_set = json.loads(body)
    except ValueError:
        raise ToolKeyError(ERROR_JWKS_BODY) from None
    if not isinstance(key_set, dict) or not isinstance(key_set.get("keys"), list):
        raise ToolKeyError(ERROR_JWKS_BODY)
    return key_set


def _cache_key(url: str) -> str:
    return "lti:jwks:" + hashlib.sha256(url.encode()).hexdigest()


@functools.lru_cache(maxsize=256)
def _rsa_from_jwk(jwk_json: str) -> Any:
    """A JWK parsed, cached per process by its canonical JSON (the key material itself)."""
    return RSAAlgorithm.from_jwk(jwk_json)


def _find(key_set: dict[str, Any], kid: str) -> RSAPublicKey | None:
    for jwk in key_set.get("keys", []):
        if not isinstance(jwk, dict) or jwk.get("kid") != kid or jwk.get("kty") != "RSA":
            continue
        if jwk.get("use", "sig") != "sig" or jwk.get("alg", "RS256") != "RS256":
            continue
        try:
            key = _rsa_from_jwk(json.dumps(jwk, sort_keys=True))
        except (ValueError, KeyError, TypeError):
            continue
        if isinstance(key, RSAPublicKey) and key.key_size >= MIN_KEY_BITS:
            return key
    return None


def tool_public_key(registration: Any, kid: str | None) -> RSAPublicKey:
    """The tool's key named ``kid`` (required: we never guess which key signed)."""
    if not kid:
        raise ToolKeyError(ERROR_UNKNOWN_KID)
    if registration.public_key_pem:
        key, thumbprint = public_key_from_pem(registration.public_key_pem)
        if kid != thumbprint:
            raise ToolKeyError(ERROR_UNKNOWN_KID)
        return key
    url = registration.jwks_url
    cache_key = _cache_key(url)
    key_set = cache.get(cache_key)
    if key_set is not None:
        found = _find(key_set, kid)
        if found is not None:
            return found
        # Unknown kid: refetch once, unless we refetched a moment ago.
        if not cache.add(cache_key + ":cooldown", 1, REFETCH_COOLDOWN_SECONDS):
            raise ToolKeyError(ERROR_UNKNOWN_KID)
    key_set = fetch_jwks(url)
    cache.set(cache_key, key_set, CACHE_SECONDS)
    found = _find(key_set, kid)
    if found is None:
        raise ToolKeyError(ERROR_UNKNOWN_KID)
    return found
