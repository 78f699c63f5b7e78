"""The one call every app uses to record a governance decision: ``audit.record(...)``.

Appending to a hash chain needs a lock (each event names its predecessor), and holding that
lock for the length of a caller's transaction would let a long import block every approval
and launch. So recording is split in two:

1. ``record()`` inserts a ``PendingAuditEvent`` inside the caller's transaction: no lock, and
   the event commits or rolls back with the decision it describes.
2. After the commit, ``flush_pending()`` runs in its own short transaction: it takes the chain
   lock (a transaction-scoped advisory lock), moves pending rows in id order into
   ``AuditEvent`` with contiguous ids, ``prev_hash`` and ``hash``, and advances the chain head.
   Outside any transaction ``record()`` flushes at once; the beat task ``audit.flush_pending``
   picks up anything a crash left behind.

Tests that call a service inside pytest-django's ``db`` transaction see the event as pending;
wrap the call in ``django_capture_on_commit_callbacks(execute=True)`` to see it chained.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.db.models import Model
from django.utils import timezone

from apps.audit.models import GENESIS_HASH, AuditChainHead, AuditEvent, PendingAuditEvent

logger = logging.getLogger(__name__)

# A constant key for pg_advisory_xact_lock: "audit chain" in ASCII, as a bigint.
CHAIN_LOCK_KEY = 0x617564697463686E
FLUSH_BATCH_SIZE = 1000

ACTION_PATTERN = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+)+$")
ERROR_BAD_ACTION = "audit action must be a dotted slug like 'keys.signing_key_rotated'; got {!r}"
ERROR_BAD_ACTOR = "audit actor must be a saved User or None (the system); got {!r}"
ERROR_BAD_TARGET = "audit target must be a saved model instance or None; got {!r}"
ERROR_BAD_DETAILS = "audit {} must be a dict of JSON-serialisable values"


# --- canonical form ---------------------------------------------------------------------------


def canonical_time(value: datetime) -> str:
    """UTC ISO 8601 with microseconds, so the same instant always serialises the same way."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_bytes(
    *,
    id: int,
    occurred_at: datetime,
    actor_id: int | None,
    actor_username: str,
    action: str,
    target_type: str,
    target_id: str,
    target_repr: str,
    details: dict,
    restricted_details: dict,
    prev_hash: str,
) -> bytes:
    """The bytes an event's hash is taken over: sorted-key compact JSON, ASCII only."""
    document = {
        "id": id,
        "occurred_at": canonical_time(occurred_at),
        "actor": None if actor_id is None else {"id": actor_id, "username": actor_username},
        "action": action,
        "target": (
            None if not target_type else {"type": target_type, "id": target_id, "repr": target_repr}
        ),
        "details": details,
        "restricted_details": restricted_details,
        "prev_hash": prev_hash,
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def event_hash(**fields: Any) -> str:
    return hashlib.sha256(canonical_bytes(**fields)).hexdigest()


# --- recording --------------------------------------------------------------------------------


def _normalised(value: dict | None, name: str) -> dict:
    """Round-trip through JSON so dates, UUIDs and decimals are stored exactly as hashed."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TypeError(ERROR_BAD_DETAILS.format(name))
    try:
        return json.loads(json.dumps(value, cls=DjangoJSONEncoder))
    except (TypeError, ValueError) as exc:
        raise TypeError(ERROR_BAD_DETAILS.format(name)) from exc


def _target_fields(target: Model | None) -> tuple[str, str, str]:
    if target is None:
        return "", "", ""
    if not isinstance(target, Model) or target.pk is None:
        raise TypeError(ERROR_BAD_TARGET.format(target))
    meta = target._meta
    # str(target) may carry personal data (a name, an email); the log keeps a neutral label
    # unless the model offers one of its own.
    label = getattr(target, "audit_label", None) or f"{meta.verbose_name} {target.pk}"
    return meta.label_lower, str(target.pk), str(label)[:200]


def record(
    *,
    actor: Any,
    action: str,
    target: Model | None = None,
    details: dict | None = None,
    restricted_details: dict | None = None,
) -> None:
    """Record a governance decision; it is chained when (and only if) the caller commits.

    ``restricted_details`` are shown only to holders of ``audit.view_restricted_details``
    (safeguarding officers), for example who was excluded and why.
    """
    if not isinstance(action, str) or not ACTION_PATTERN.match(action) or len(action) > 100:
        raise ValueError(ERROR_BAD_ACTION.format(action))
    if actor is not None and (getattr(actor, "pk", None) is None or not hasattr(actor, "username")):
        raise TypeError(ERROR_BAD_ACTOR.format(actor))
    target_type, target_id, target_repr = _target_fields(target)
    PendingAuditEvent.objects.create(
        occurred_at=timezone.now(),
        actor_id=None if actor is None else actor.pk,
        actor_username="" if actor is None else actor.get_username(),
        action=action,
        target_type=target_type,
        target_id=target_id,
        target_repr=target_repr,
        details=_normalised(details, "details"),
        restricted_details=_normalised(restricted_details, "restricted_details"),
    )
    if connection.in_atomic_block:
        _flush_after_commit()
    else:
        _flush_quietly()


def _flush_after_commit() -> None:
    # One flush per transaction is enough: it moves every pending row, so skip registering a
    # second callback for a transaction that already has one (a long import records many).
    if any(func is _flush_quietly for _sids, func, _robust in connection.run_on_commit):
        return
    transaction.on_commit(_flush_quietly, robust=True)


def _flush_quietly() -> None:
    """Flush after the decision has committed; a failure here must not undo or hide it."""
    try:
        flush_pending()
    except Exception:  # the beat task retries; the pending rows are safe
        logger.exception("audit: flushing pending events failed; the beat task will retry")


# --- chaining ---------------------------------------------------------------------------------

_PENDING_FIELDS = (
    "id",
    "occurred_at",
    "actor_id",
    "actor_username",
    "action",
    "target_type",
    "target_id",
    "target_repr",
    "details",
    "restricted_details",
)


def flush_pending(*, batch_size: int = FLUSH_BATCH_SIZE) -> int:
    """Move committed pending events into the chain; return how many were chained.

    Each batch is its own short transaction holding the chain lock, so callers never wait on
    each other for longer than one batch. Called inside an atomic block it runs as a savepoint
    and the lock lasts until the outer transaction ends: do that only in tests.
    """
    moved = 0
    while True:
        with transaction.atomic():
            with connection.cursor() as cursor:
                # Asynchronous commit is safe here: the pending rows are already durable, and a
                # flush lost in a crash is redone identically (same ids, same hashes).
                cursor.execute(
                    "SELECT set_config('synchronous_commit', 'off', true), "
                    "pg_advisory_xact_lock(%s)",
                    [CHAIN_LOCK_KEY],
                )
            pending = list(
                PendingAuditEvent.objects.order_by("id").values(*_PENDING_FIELDS)[:batch_size]
            )
            if not pending:
                return moved
            head, _ = AuditChainHead.objects.get_or_create(id=1)
            last_id, last_hash = head.last_id, head.last_hash
            events = []
            for row in pending:
                last_id += 1
                fields = {name: row[name] for name in _PENDING_FIELDS if name != "id"}
                digest = event_hash(id=last_id, prev_hash=last_hash, **fields)
                events.append(AuditEvent(id=last_id, prev_hash=last_hash, hash=digest, **fields))
                last_hash = digest
            AuditEvent.objects.bulk_create(events)
            PendingAuditEvent.objects.filter(id__in=[row["id"] for row in pending]).delete()
            AuditChainHead.objects.filter(id=1).update(
                last_id=last_id, last_hash=last_hash, count=head.count + len(events)
            )
            moved += len(events)
        if len(pending) < batch_size:
            return moved


__all__ = ["GENESIS_HASH", "record", "flush_pending", "event_hash", "canonical_bytes"]
