"""Connector secrets (SFTP private keys, REST client secrets), wrapped by the master key.

They are bound (AAD) to what they are for and to the row that holds them, so a wrapped
key copied onto another destination no longer unwraps (apps/keys/keyring.py).
"""

from __future__ import annotations

from apps.keys.keyring import keyring

PURPOSE_DESTINATION_KEY = "delivery.destination.sftp_key"
PURPOSE_SOURCE_KEY = "delivery.source.sftp_key"
PURPOSE_SOURCE_SECRET = "delivery.source.rest_secret"  # noqa: S105 (a label)


def secret_wrap(secret: str, *, purpose: str, object_id: str) -> tuple[bytes, str]:
    wrapped = keyring().wrap(secret.encode(), purpose=purpose, object_id=object_id)
    return wrapped.blob, wrapped.master_key_id


def secret_unwrap(blob: bytes, *, master_key_id: str, purpose: str, object_id: str) -> str:
    return keyring().unwrap(
        bytes(blob), master_key_id=master_key_id, purpose=purpose, object_id=object_id
    ).decode()
