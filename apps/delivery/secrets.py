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


def register_wrapped_secrets() -> None:
    """Tell the keys app which columns hold wrapped secrets, for master key rotation."""
    from apps.delivery.models import Destination, SisSource
    from apps.keys.services import WrappedField, wrapped_field_register

    for model, field, key_id_field, purpose in (
        (Destination, "sftp_private_key_wrapped", "sftp_private_key_master_key_id",
         PURPOSE_DESTINATION_KEY),
        (SisSource, "sftp_private_key_wrapped", "sftp_private_key_master_key_id",
         PURPOSE_SOURCE_KEY),
        (SisSource, "rest_client_secret_wrapped", "rest_client_secret_master_key_id",
         PURPOSE_SOURCE_SECRET),
    ):
        wrapped_field_register(WrappedField(
            model=model, field=field, key_id_field=key_id_field,
            purpose=lambda row, purpose=purpose: purpose, object_id=lambda row: str(row.pk),
        ))
