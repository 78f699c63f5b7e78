"""Services of the keys app: data key destruction, signing key life cycle, master key rotation.

Every change to a key is audited; audit details carry ids and counts, never key material.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from apps.audit import audit
from apps.keys import master
from apps.keys.jwk import jwk_thumbprint, rsa_public_jwk
from apps.keys.keyring import (
    KeyringError,
    Wrapped,
    data_key_binding,
    keyring,
    signing_key_binding,
)
from apps.keys.models import DataKey, SigningKey

Purpose = SigningKey.Purpose
State = SigningKey.State

# RSA modulus size by purpose: evidence signatures must verify for years, so they get more.
RSA_KEY_SIZES = {Purpose.LTI: 2048, Purpose.EVIDENCE: 3072}
RSA_PUBLIC_EXPONENT = 65537
JWT_ALGORITHM = "RS256"
REWRAP_BATCH_SIZE = 500

UNKNOWN_PURPOSE = "Unknown signing key purpose {purpose!r}; expected one of {choices}."
NEXT_KEY_EXISTS = "A next {purpose} key already exists ({kid}); rotate to use it."
ALREADY_REVOKED = "Signing key {kid} is already revoked."
REASON_REQUIRED = "A reason is required to revoke a signing key."
ROTATION_MISSING_KEYS = (
    "Cannot rotate: some keys are wrapped by master key(s) {key_ids}, which are not configured. "
    "Set the old key as INTERCHANGE_MASTER_KEY_PREVIOUS and run again. Nothing was changed."
)
GENERATE_SANDBOX_ONLY = (
    "--generate only works in the sandbox; elsewhere set the new key as INTERCHANGE_MASTER_KEY "
    "and the old one as INTERCHANGE_MASTER_KEY_PREVIOUS, then run rotate_master_key."
)
GENERATE_NEEDS_KEY_FILE = (
    "--generate rotates the sandbox key file {path}, but the configured master key does not "
    "come from it (INTERCHANGE_MASTER_KEY is set in the environment)."
)


class SigningKeyError(ValueError):
    """A signing key operation was refused; the message says why."""


# --- data keys -------------------------------------------------------------------------------


def data_keys_destroy(*, data_key_ids: Iterable[Any], actor=None, reason: str = "") -> int:  # type: ignore[no-untyped-def]
    """Crypto-shred files by erasing their wrapped data keys (one UPDATE for the whole set).

    Every copy of the ciphertext becomes unreadable at once. Database backups
    still hold the wrapped key until they expire, wrapped by a master key: rotate
    the master key after the backup window to finish the job.
    """
    ids = list(data_key_ids)
    if not ids:
        return 0
    with transaction.atomic():
        destroyed = DataKey.objects.filter(pk__in=ids, destroyed_at__isnull=True).update(
            wrapped_key=b"", destroyed_at=timezone.now()
        )
        if destroyed:
            audit.record(
                actor=actor,
                action="keys.data_keys_destroyed",
                details={
                    "count": destroyed,
                    "reason": reason,
                    "data_key_ids": sorted(map(str, ids))[:1000],
                },
            )
    return destroyed


def data_key_destroy(*, data_key: DataKey, actor=None, reason: str = "") -> bool:  # type: ignore[no-untyped-def]
    """Crypto-shred one file; True when the key was live until now."""
    destroyed = data_keys_destroy(data_key_ids=[data_key.pk], actor=actor, reason=reason)
    data_key.refresh_from_db(fields=["wrapped_key", "destroyed_at"])
    return destroyed == 1


# --- signing keys ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _KeyMaterial:
    kid: str
    key_size: int
    public_key_pem: str
    private_der: bytes


def _check_purpose(purpose: str) -> Purpose:
    try:
        return Purpose(purpose)
    except ValueError:
        raise SigningKeyError(
            UNKNOWN_PURPOSE.format(purpose=purpose, choices=", ".join(Purpose.values))
        ) from None


def _generate(purpose: Purpose) -> _KeyMaterial:
    """RSA generation is slow (a second for 3072 bits): callers do it before taking locks."""
    key_size = RSA_KEY_SIZES[purpose]
    private = rsa.generate_private_key(public_exponent=RSA_PUBLIC_EXPONENT, key_size=key_size)
    public = private.public_key()
    return _KeyMaterial(
        kid=jwk_thumbprint(rsa_public_jwk(public)),
        key_size=key_size,
        public_key_pem=public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode("ascii"),
        private_der=private.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


def _insert(material: _KeyMaterial, *, purpose: Purpose, state: str, actor=None) -> SigningKey:  # type: ignore[no-untyped-def]
    wrapped = keyring().wrap(
        material.private_der, purpose=signing_key_binding(purpose), object_id=material.kid
    )
    key = SigningKey(
        kid=material.kid,
        purpose=purpose,
        state=state,
        key_size=material.key_size,
        public_key_pem=material.public_key_pem,
        wrapped_private_key=wrapped.blob,
        master_key_id=wrapped.master_key_id,
        activated_at=timezone.now() if state == State.ACTIVE else None,
    )
    _save(key, actor)
    return key


def _save(key: SigningKey, actor) -> None:  # type: ignore[no-untyped-def]
    if actor is not None:
        key._history_user = actor  # type: ignore[attr-defined]  (simple-history's hook)
    key.save()


def _lock(purpose: str) -> None:
    """Serialise life-cycle changes per purpose (transaction-scoped advisory lock)."""
    digest = hashlib.sha256(f"interchange.keys.signing:{purpose}".encode()).digest()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(%s)", [int.from_bytes(digest[:8], "big", signed=True)]
        )


def _by_state(purpose: str) -> dict[str, SigningKey]:
    rows = SigningKey.objects.select_for_update().filter(
        purpose=purpose, state__in=[State.NEXT, State.ACTIVE]
    )
    return {row.state: row for row in rows}


def signing_key_create(*, purpose: str, actor=None) -> SigningKey:  # type: ignore[no-untyped-def]
    """Create the next key of ``purpose`` (published in the JWKS before it signs anything)."""
    checked = _check_purpose(purpose)
    material = _generate(checked)
    with transaction.atomic():
        _lock(checked)
        existing = _by_state(checked).get(State.NEXT)
        if existing is not None:
            raise SigningKeyError(NEXT_KEY_EXISTS.format(purpose=checked.value, kid=existing.kid))
        key = _insert(material, purpose=checked, state=State.NEXT, actor=actor)
        audit.record(
            actor=actor,
            action="keys.signing_key_created",
            target=key,
            details={"purpose": checked.value, "kid": key.kid, "state": key.state},
        )
    return key


def signing_keys_rotate(*, purpose: str, actor=None) -> SigningKey:  # type: ignore[no-untyped-def]
    """Next becomes active, active becomes retired, a fresh next is created; returns the active.

    Verifiers already hold the next key (it was published), so signatures from
    the newly active key verify at once, and the retired key stays published
    long enough for tokens it signed to expire.
    """
    checked = _check_purpose(purpose)
    fresh = _generate(checked)
    with transaction.atomic():
        _lock(checked)
        keys = _by_state(checked)
        now = timezone.now()
        retired = keys.get(State.ACTIVE)
        if retired is not None:
            retired.state, retired.retired_at = State.RETIRED, now
            _save(retired, actor)
        activated = keys.get(State.NEXT)
        if activated is None:  # nothing was prepared: the fresh key goes live directly
            activated = _insert(fresh, purpose=checked, state=State.ACTIVE, actor=actor)
            fresh = _generate(checked)
        else:
            activated.state, activated.activated_at = State.ACTIVE, now
            _save(activated, actor)
        upcoming = _insert(fresh, purpose=checked, state=State.NEXT, actor=actor)
        audit.record(
            actor=actor,
            action="keys.signing_keys_rotated",
            target=activated,
            details={
                "purpose": checked.value,
                "activated": activated.kid,
                "retired": retired.kid if retired else None,
                "next": upcoming.kid,
            },
        )
    return activated


def signing_key_revoke(*, key: SigningKey, actor, reason: str) -> SigningKey:  # type: ignore[no-untyped-def]
    """Mark a key compromised. It leaves the LTI JWKS at once and is flagged in the evidence JWKS.

    Revoking the active key promotes the next one, so signing never stops; a
    fresh next key is created whenever the revoked key was active or next.
    """
    if not reason or not reason.strip():
        raise SigningKeyError(REASON_REQUIRED)
    purpose = _check_purpose(key.purpose)
    fresh = _generate(purpose)
    with transaction.atomic():
        _lock(purpose)
        key = SigningKey.objects.select_for_update().get(pk=key.pk)
        if key.state == State.REVOKED:
            raise SigningKeyError(ALREADY_REVOKED.format(kid=key.kid))
        previous_state = key.state
        now = timezone.now()
        key.state, key.revoked_at, key.revoked_reason = State.REVOKED, now, reason.strip()
        _save(key, actor)
        promoted = upcoming = None
        if previous_state == State.ACTIVE:
            promoted = _by_state(purpose).get(State.NEXT)
            if promoted is not None:
                promoted.state, promoted.activated_at = State.ACTIVE, now
                _save(promoted, actor)
            else:
                promoted = _insert(fresh, purpose=purpose, state=State.ACTIVE, actor=actor)
                fresh = _generate(purpose)
        if previous_state in (State.ACTIVE, State.NEXT):
            upcoming = _insert(fresh, purpose=purpose, state=State.NEXT, actor=actor)
        audit.record(
            actor=actor,
            action="keys.signing_key_revoked",
            target=key,
            details={
                "purpose": purpose.value,
                "kid": key.kid,
                "previous_state": previous_state,
                "reason": key.revoked_reason,
                "activated": promoted.kid if promoted else None,
                "next": upcoming.kid if upcoming else None,
            },
        )
    return key


def signing_key_active(*, purpose: str) -> SigningKey:
    """The key that signs for ``purpose`` now; the first call creates an active and a next key.

    Concurrent first calls are safe: the advisory lock lets one process
    bootstrap while the others wait and then find its keys.
    """
    checked = _check_purpose(purpose)
    key = SigningKey.objects.filter(purpose=checked, state=State.ACTIVE).first()
    if key is not None:
        return key
    return _signing_keys_bootstrap(purpose=checked)


def _signing_keys_bootstrap(*, purpose: Purpose) -> SigningKey:
    with transaction.atomic():
        _lock(purpose)
        keys = _by_state(purpose)
        if State.ACTIVE in keys:  # another process won the race
            return keys[State.ACTIVE]
        # Generating under the lock is acceptable here: it happens once per purpose.
        active = keys.get(State.NEXT)
        if active is not None:
            active.state, active.activated_at = State.ACTIVE, timezone.now()
            _save(active, None)
        else:
            active = _insert(_generate(purpose), purpose=purpose, state=State.ACTIVE)
        upcoming = _insert(_generate(purpose), purpose=purpose, state=State.NEXT)
        audit.record(
            actor=None,
            action="keys.signing_keys_bootstrapped",
            target=active,
            details={"purpose": purpose.value, "activated": active.kid, "next": upcoming.kid},
        )
    return active


_private_key_cache: dict[tuple[str, str, bytes], rsa.RSAPrivateKey] = {}
_PRIVATE_KEY_CACHE_SIZE = 16


def load_private_key(key: SigningKey) -> rsa.RSAPrivateKey:
    """Unwrap and parse a signing key's private half (cached per process: parsing is slow)."""
    blob = bytes(key.wrapped_private_key)
    cache_key = (key.kid, key.master_key_id, hashlib.sha256(blob).digest())
    cached = _private_key_cache.get(cache_key)
    if cached is not None:
        return cached
    der = keyring().unwrap(
        blob,
        master_key_id=key.master_key_id,
        purpose=signing_key_binding(key.purpose),
        object_id=key.kid,
    )
    private = serialization.load_der_private_key(der, password=None)
    if not isinstance(private, rsa.RSAPrivateKey):  # pragma: no cover (we only store RSA)
        raise SigningKeyError(f"signing key {key.kid} is not an RSA key")
    if len(_private_key_cache) >= _PRIVATE_KEY_CACHE_SIZE:
        _private_key_cache.clear()
    _private_key_cache[cache_key] = private
    return private


def sign_jwt(
    *, purpose: str, payload: dict[str, Any], headers: dict[str, Any] | None = None
) -> str:
    """Sign ``payload`` with the active key of ``purpose``: RS256, ``kid`` always set."""
    key = signing_key_active(purpose=purpose)
    merged = {**(headers or {}), "kid": key.kid, "alg": JWT_ALGORITHM}
    return jwt.encode(payload, load_private_key(key), algorithm=JWT_ALGORITHM, headers=merged)


# --- master key rotation ---------------------------------------------------------------------


@dataclass(frozen=True)
class MasterKeyRotation:
    new_master_key_id: str
    previous_master_key_ids: list[str]
    data_keys_rewrapped: int
    signing_keys_rewrapped: int
    # secrets other apps wrap (``wrapped_field_register``), per "app.Model.field"
    other_secrets_rewrapped: dict[str, int]
    batches: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class WrappedField:
    """A column holding a small secret wrapped by the master key (``keyring().wrap``), with
    the column naming the master key that wrapped it. A rotation re-wraps every such value."""

    model: type
    field: str
    key_id_field: str
    purpose: Callable[[Any], str]  # the wrap purpose (AAD) of a row
    object_id: Callable[[Any], str]  # the object id (AAD) of a row


_WRAPPED_FIELDS: list[WrappedField] = [
    WrappedField(DataKey, "wrapped_key", "master_key_id",
                 lambda row: data_key_binding(row.purpose), lambda row: str(row.pk)),
    WrappedField(SigningKey, "wrapped_private_key", "master_key_id",
                 lambda row: signing_key_binding(row.purpose), lambda row: row.kid),
]


def wrapped_field_register(wrapped: WrappedField) -> None:
    """Apps that wrap their own secrets with the keyring (delivery's SFTP keys, for one)
    register each column here from ``AppConfig.ready``, so ``master_key_rotate`` re-wraps
    them too; otherwise dropping the previous master key would make them unreadable."""
    if not any(w.model is wrapped.model and w.field == wrapped.field for w in _WRAPPED_FIELDS):
        _WRAPPED_FIELDS.append(wrapped)


def _stale(wrapped: WrappedField, current_id: str):  # type: ignore[no-untyped-def]
    """Rows holding a value wrapped by another master key (empty values hold nothing)."""
    rows = wrapped.model.objects.exclude(**{wrapped.key_id_field: current_id}).exclude(
        **{wrapped.key_id_field: ""}
    )
    if wrapped.model is DataKey:
        rows = rows.filter(destroyed_at__isnull=True)
    return rows


def master_key_rotate(*, actor=None, batch_size: int = REWRAP_BATCH_SIZE) -> MasterKeyRotation:  # type: ignore[no-untyped-def]
    """Re-wrap every data key and signing private key under the CURRENT master key.

    Operator flow: configure the new key as INTERCHANGE_MASTER_KEY and the old
    one as INTERCHANGE_MASTER_KEY_PREVIOUS, run this (``rotate_master_key``),
    then remove PREVIOUS. Each batch is its own transaction, so a failure
    leaves every row consistently wrapped under one configured key or the other,
    and running again resumes. Files are not touched: only their small data keys.
    """
    ring = keyring()
    current_id = ring.current.key_id
    previous_ids: set[str] = set()
    for wrapped in _WRAPPED_FIELDS:
        previous_ids |= set(
            _stale(wrapped, current_id).values_list(wrapped.key_id_field, flat=True).distinct()
        )
    missing = sorted(previous_ids - set(ring.key_ids))
    if missing:
        raise KeyringError(ROTATION_MISSING_KEYS.format(key_ids=", ".join(missing)))

    counts: dict[str, int] = {}
    batches = 0
    for wrapped in _WRAPPED_FIELDS:
        label = f"{wrapped.model._meta.label}.{wrapped.field}"
        counts[label] = 0
        while True:
            with transaction.atomic():
                rows = list(
                    _stale(wrapped, current_id).select_for_update().order_by("pk")[:batch_size]
                )
                if not rows:
                    break
                for row in rows:
                    rewrapped = ring.rewrap(
                        Wrapped(blob=bytes(getattr(row, wrapped.field)),
                                master_key_id=getattr(row, wrapped.key_id_field)),
                        purpose=wrapped.purpose(row),
                        object_id=wrapped.object_id(row),
                    )
                    setattr(row, wrapped.field, rewrapped.blob)
                    setattr(row, wrapped.key_id_field, rewrapped.master_key_id)
                wrapped.model.objects.bulk_update(rows, [wrapped.field, wrapped.key_id_field])
                counts[label] += len(rows)
                batches += 1

    result = MasterKeyRotation(
        new_master_key_id=current_id,
        previous_master_key_ids=sorted(previous_ids),
        data_keys_rewrapped=counts["keys.DataKey.wrapped_key"],
        signing_keys_rewrapped=counts["keys.SigningKey.wrapped_private_key"],
        other_secrets_rewrapped={
            label: n for label, n in counts.items()
            if label not in ("keys.DataKey.wrapped_key", "keys.SigningKey.wrapped_private_key")
        },
        batches=batches,
    )
    audit.record(actor=actor, action="keys.master_key_rotated", details=result.as_dict())
    return result


def previous_key_file(key_file: Path) -> Path:
    return key_file.with_name(key_file.name + ".previous")


def _write_private(path: Path, text: str) -> None:
    """Write a key file atomically with mode 0600."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.unlink(missing_ok=True)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(text + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def master_key_generate_and_rotate(
    *, actor=None, batch_size: int = REWRAP_BATCH_SIZE
) -> MasterKeyRotation:  # type: ignore[no-untyped-def]
    """Sandbox: the whole operator flow on var/master.key in one step.

    The old key is kept as var/master.key.previous (which settings read in the
    sandbox) until every row is re-wrapped, so a crash half-way loses nothing:
    running again resumes with the same pair of keys.
    """
    if not settings.IS_SANDBOX:
        raise KeyringError(GENERATE_SANDBOX_ONLY)
    key_file = Path(settings.MASTER_KEY_FILE_DEFAULT)
    old_file = previous_key_file(key_file)
    on_disk = key_file.read_text(encoding="ascii").strip() if key_file.exists() else None
    if on_disk != settings.INTERCHANGE_MASTER_KEY:
        raise KeyringError(GENERATE_NEEDS_KEY_FILE.format(path=key_file))
    if old_file.exists():  # an earlier run stopped half-way: finish it with the same keys
        settings.INTERCHANGE_MASTER_KEY_PREVIOUS = old_file.read_text(encoding="ascii").strip()
    else:
        old_text = on_disk
        _write_private(old_file, old_text)
        _write_private(key_file, master.generate_key())
        settings.INTERCHANGE_MASTER_KEY = key_file.read_text(encoding="ascii").strip()
        settings.INTERCHANGE_MASTER_KEY_PREVIOUS = old_text
    result = master_key_rotate(actor=actor, batch_size=batch_size)
    old_file.unlink()
    settings.INTERCHANGE_MASTER_KEY_PREVIOUS = None
    return result


def signing_keys_rotate_if_due(*, purpose: str, max_age_days: int, actor=None) -> SigningKey | None:  # type: ignore[no-untyped-def]
    """Rotate when the active key has signed for ``max_age_days`` or more (idempotent, for beat).

    Returns the newly active key, or None when no rotation was due.
    """
    active = signing_key_active(purpose=purpose)
    if active.activated_at and timezone.now() - active.activated_at < timedelta(days=max_age_days):
        return None
    return signing_keys_rotate(purpose=purpose, actor=actor)
