"""Verification of the audit hash chain: the service behind ``verify_audit_chain``."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from django.db import connection, transaction

from apps.audit.audit import event_hash
from apps.audit.models import GENESIS_HASH, AuditChainHead, AuditEvent

REASON_HASH_MISMATCH = "hash mismatch"
REASON_PREV_HASH_MISMATCH = "prev_hash mismatch"
REASON_GAP = "gap"
REASON_HEAD_MISMATCH = "head mismatch"

VERIFY_CHUNK_SIZE = 2000

_FIELDS = (
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
    "prev_hash",
    "hash",
)


@dataclass(frozen=True)
class ChainReport:
    intact: bool
    events: int
    last_id: int
    last_hash: str
    broken_event_id: int | None = None
    reason: str | None = None
    detail: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def audit_chain_verify() -> ChainReport:
    """Walk the whole chain in id order in constant memory; report the first break.

    Runs in one REPEATABLE READ snapshot so the head and the events agree even while other
    processes keep appending. An altered event fails its hash; a removed one leaves a gap; a
    reordered one fails its hash (the id is hashed); a removed tail disagrees with the head.
    """
    with transaction.atomic():
        if not connection.savepoint_ids:
            # Only a fresh transaction can choose its isolation; inside a caller's (a test's)
            # transaction the caller's snapshot rules.
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        head = AuditChainHead.objects.filter(id=1).first()
        expected_id, expected_prev, count = 1, GENESIS_HASH, 0

        def broken(event_id: int | None, reason: str, detail: str) -> ChainReport:
            return ChainReport(
                intact=False,
                events=count,
                last_id=expected_id - 1,
                last_hash=expected_prev,
                broken_event_id=event_id,
                reason=reason,
                detail=detail,
            )

        rows = AuditEvent.objects.order_by("id").values_list(*_FIELDS)
        for row in rows.iterator(chunk_size=VERIFY_CHUNK_SIZE):
            fields = dict(zip(_FIELDS, row, strict=True))
            event_id, stored_hash = fields.pop("id"), fields.pop("hash")
            if event_id != expected_id:
                return broken(
                    event_id, REASON_GAP, f"expected event {expected_id}, found {event_id}"
                )
            if event_hash(id=event_id, **fields) != stored_hash:
                return broken(
                    event_id, REASON_HASH_MISMATCH, "content does not match the stored hash"
                )
            if fields["prev_hash"] != expected_prev:
                return broken(
                    event_id,
                    REASON_PREV_HASH_MISMATCH,
                    f"prev_hash does not match the hash of event {event_id - 1}",
                )
            expected_id, expected_prev, count = event_id + 1, stored_hash, count + 1

        head_state = (
            (0, GENESIS_HASH, 0) if head is None else (head.last_id, head.last_hash, head.count)
        )
        if head_state != (expected_id - 1, expected_prev, count):
            log_last = expected_id - 1
            # The first event the head and the log disagree about: a removed tail names the
            # first missing event, events beyond the head the first unaccounted one.
            first = min(head_state[0], log_last) + 1 if head_state[0] != log_last else log_last
            return broken(
                first or None,
                REASON_HEAD_MISMATCH,
                f"chain head names event {head_state[0]} ({head_state[2]} events); "
                f"the log ends at event {expected_id - 1} ({count} events)",
            )
        return ChainReport(
            intact=True, events=count, last_id=expected_id - 1, last_hash=expected_prev
        )
