"""The keyring: the current master key and, during a rotation, the previous one.

The master key only ever wraps small secrets (per-file data keys, signing keys'
private halves). Each wrapped secret records the id of the master key that
wrapped it, so during a rotation either configured key can unwrap, and a secret
whose master key is no longer configured fails with a message that names the
missing key id rather than a bare authentication error.

Wrapping is AES-256-GCM with a fresh random 96-bit nonce; the associated data
binds the secret to what it is for (``purpose``) and which row holds it
(``object_id``), so a wrapped key copied onto another row, or relabelled with
another purpose, no longer unwraps.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings

from apps.keys import master

NONCE_BYTES = 12
WRAP_FORMAT = b"\x01"  # leading byte of every wrapped blob, so the format can evolve

NO_MASTER_KEY = "No master key is configured (INTERCHANGE_MASTER_KEY)."
UNKNOWN_MASTER_KEY = (
    "The secret was wrapped by master key {key_id}, which is not configured. "
    "Configure it as INTERCHANGE_MASTER_KEY_PREVIOUS (or INTERCHANGE_MASTER_KEY) to read it."
)
UNWRAP_FAILED = (
    "The wrapped secret did not authenticate under master key {key_id} "
    "(altered, or bound to another purpose or object)."
)
BAD_WRAPPED_FORMAT = "The wrapped secret is not in a format this version understands."


class KeyringError(Exception):
    """A wrapped secret cannot be unwrapped; ``message`` says why, without key material."""


@dataclass(frozen=True, repr=False)
class MasterKey:
    key_id: str
    raw: bytes

    def __repr__(self) -> str:  # never print key material
        return f"MasterKey(key_id={self.key_id!r})"


@dataclass(frozen=True)
class Wrapped:
    """A wrapped secret and the id of the master key that wrapped it."""

    blob: bytes
    master_key_id: str


@dataclass(frozen=True)
class Keyring:
    current: MasterKey
    previous: MasterKey | None = None

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(k.key_id for k in (self.current, self.previous) if k is not None)

    def get(self, key_id: str) -> MasterKey:
        for key in (self.current, self.previous):
            if key is not None and key.key_id == key_id:
                return key
        raise KeyringError(UNKNOWN_MASTER_KEY.format(key_id=key_id))

    def wrap(self, secret: bytes, *, purpose: str, object_id: str) -> Wrapped:
        """Wrap under the current master key (always: new secrets never use the previous)."""
        nonce = os.urandom(NONCE_BYTES)
        aad = _aad(purpose=purpose, object_id=object_id, key_id=self.current.key_id)
        sealed = AESGCM(self.current.raw).encrypt(nonce, secret, aad)
        return Wrapped(blob=WRAP_FORMAT + nonce + sealed, master_key_id=self.current.key_id)

    def unwrap(self, blob: bytes, *, master_key_id: str, purpose: str, object_id: str) -> bytes:
        key = self.get(master_key_id)
        blob = bytes(blob)
        if not blob.startswith(WRAP_FORMAT) or len(blob) < 1 + NONCE_BYTES + 16:
            raise KeyringError(BAD_WRAPPED_FORMAT)
        nonce, sealed = blob[1 : 1 + NONCE_BYTES], blob[1 + NONCE_BYTES :]
        aad = _aad(purpose=purpose, object_id=object_id, key_id=key.key_id)
        try:
            return AESGCM(key.raw).decrypt(nonce, sealed, aad)
        except InvalidTag:
            raise KeyringError(UNWRAP_FAILED.format(key_id=key.key_id)) from None

    def rewrap(self, wrapped: Wrapped, *, purpose: str, object_id: str) -> Wrapped:
        """Unwrap with whichever configured key wrapped it; wrap again under the current one."""
        secret = self.unwrap(
            wrapped.blob, master_key_id=wrapped.master_key_id, purpose=purpose, object_id=object_id
        )
        return self.wrap(secret, purpose=purpose, object_id=object_id)


def data_key_binding(purpose: str) -> str:
    """What a file's data key is wrapped for (part of the AAD)."""
    return f"data-key:{purpose}"


def signing_key_binding(purpose: str) -> str:
    """What a signing key's private half is wrapped for (part of the AAD)."""
    return f"signing-key:{purpose}"


def _aad(*, purpose: str, object_id: str, key_id: str) -> bytes:
    # Length-prefixed fields, so no choice of strings can make two bindings collide.
    parts = [b"interchange-wrap-v1", purpose.encode(), object_id.encode(), key_id.encode()]
    return b"".join(len(p).to_bytes(2, "big") + p for p in parts)


_cache: dict[tuple[str | None, str | None], Keyring] = {}


def keyring() -> Keyring:
    """The keyring from settings, read on every call so overrides and rotations take effect.

    Decoding is cached on the configured texts, so the hot path costs a dict lookup.
    """
    current_text = getattr(settings, "INTERCHANGE_MASTER_KEY", None)
    previous_text = getattr(settings, "INTERCHANGE_MASTER_KEY_PREVIOUS", None)
    cache_key = (current_text, previous_text)
    ring = _cache.get(cache_key)
    if ring is not None:
        return ring
    if not current_text:
        raise KeyringError(NO_MASTER_KEY)
    current_raw = master.decode_key(current_text)
    current = MasterKey(key_id=master.key_id(current_raw), raw=current_raw)
    previous = None
    if previous_text:
        previous_raw = master.decode_key(previous_text, source="INTERCHANGE_MASTER_KEY_PREVIOUS")
        if previous_raw != current_raw:
            previous = MasterKey(key_id=master.key_id(previous_raw), raw=previous_raw)
    ring = Keyring(current=current, previous=previous)
    _cache.clear()  # only the live configuration is worth keeping
    _cache[cache_key] = ring
    return ring
