"""The master key: loading, generation and identification.

Kept free of Django imports because settings import it before apps load.
The master key never encrypts data directly; it wraps per-file data keys and
signing keys' private halves (envelope encryption), so rotating it re-wraps
small keys rather than re-encrypting every file.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
from pathlib import Path

MASTER_KEY_BYTES = 32


class MasterKeyError(ValueError):
    """The configured master key is missing or malformed."""


def generate_key() -> str:
    """A new master key as URL-safe base64 text (what the settings expect)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(MASTER_KEY_BYTES)).decode("ascii")


def decode_key(text: str, *, source: str = "INTERCHANGE_MASTER_KEY") -> bytes:
    try:
        raw = base64.urlsafe_b64decode(text.strip().encode("ascii"))
    except (binascii.Error, ValueError, UnicodeEncodeError) as exc:
        raise MasterKeyError(f"{source} is not URL-safe base64") from exc
    if len(raw) != MASTER_KEY_BYTES:
        raise MasterKeyError(f"{source} must decode to {MASTER_KEY_BYTES} bytes, got {len(raw)}")
    return raw


def key_id(raw: bytes) -> str:
    """A stable, non-secret identifier of a master key (first 16 hex chars of its SHA-256)."""
    return hashlib.sha256(b"interchange-master-key-id:" + raw).hexdigest()[:16]


def load_or_create_key_file(path: Path) -> str:
    """Sandbox only: read the generated key, creating it (mode 0600) on first use."""
    if path.exists():
        return path.read_text(encoding="ascii").strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = generate_key()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(key + "\n")
    return key
