"""Models of the audit app: the hash-chained audit log, access records and the disclosure ledger.

Everything here is a record, not state: rows are appended by the services in this app and
read by oversight (monitoring, offboarding, auditors). No foreign key points upward to a
later layer (vendors, integrations): those are plain integer ids, so the base layer never
imports what stands on it.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import models

GENESIS_HASH = "0" * 64


class FieldClass(models.TextChoices):
    """Classes of personal data, used by the disclosure ledger and by governance's classification.

    The order is part of the stored format: a disclosure keeps its classes as a bitmask in which
    the n-th member is bit n. Append new classes at the end; never reorder or remove.
    """

    IDENTIFIER = "identifier", "Identifier"
    DIRECTORY = "directory", "Directory (names, classes, enrolments)"
    CONTACT = "contact", "Contact details"
    DEMOGRAPHIC = "demographic", "Demographic"
    SPECIAL_CATEGORY = "special_category", "Special category"
    ASSESSMENT = "assessment", "Assessment (grades, results)"
    CREDENTIAL = "credential", "Credential"


_FIELD_CLASS_BITS = {value: bit for bit, value in enumerate(FieldClass.values)}


ERROR_UNKNOWN_FIELD_CLASS = "unknown field class {!r}; expected one of {}"


def field_classes_mask(classes: Iterable[str]) -> int:
    """The bitmask of a set of field classes: bit n for the n-th member of ``FieldClass``."""
    mask = 0
    for name in classes:
        try:
            mask |= 1 << _FIELD_CLASS_BITS[name]
        except KeyError:
            raise ValueError(
                ERROR_UNKNOWN_FIELD_CLASS.format(name, ", ".join(FieldClass.values))
            ) from None
    return mask


def field_classes_from_mask(mask: int) -> list[str]:
    return [name for name, bit in _FIELD_CLASS_BITS.items() if mask & (1 << bit)]


class Channel(models.TextChoices):
    """The channels data leaves the hub through (access records and disclosures)."""

    ONEROSTER_REST = "oneroster_rest", "OneRoster REST"
    ONEROSTER_CSV = "oneroster_csv", "OneRoster CSV delivery"
    LTI_LAUNCH = "lti_launch", "LTI launch"
    LTI_NRPS = "lti_nrps", "LTI Names and Roles"
    LTI_AGS = "lti_ags", "LTI Assignment and Grade Services"
    LTI_DEEP_LINKING = "lti_deep_linking", "LTI Deep Linking"


class AuditEvent(models.Model):
    """One governance decision, in a hash chain that makes alteration, removal, reordering evident.

    Ids are contiguous and assigned by the chain flush (apps/audit/audit.py) under the chain's
    lock, so a gap is itself evidence. ``hash`` is sha256 over the canonical serialisation of
    the event including ``prev_hash``; PostgreSQL refuses UPDATE, DELETE and TRUNCATE on the
    table (migration 0001).
    """

    id = models.BigIntegerField(primary_key=True)
    occurred_at = models.DateTimeField(db_index=True)
    actor_id = models.BigIntegerField(null=True, blank=True, help_text="Empty for the system.")
    actor_username = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=100, db_index=True)
    target_type = models.CharField(max_length=100, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    target_repr = models.CharField(max_length=200, blank=True)
    details = models.JSONField(default=dict, blank=True)
    restricted_details = models.JSONField(default=dict, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["-id"]
        # Append-only: nobody is ever granted add/change/delete on the log.
        default_permissions = ("view",)
        permissions = [
            ("view_restricted_details", "Can see restricted details of audit events"),
            ("export_audit", "Can export the audit log and evidence"),
        ]
        indexes = [models.Index(fields=["target_type", "target_id"], name="audit_event_target")]

    def __str__(self) -> str:
        return f"#{self.id} {self.action}"

    @property
    def actor_display(self) -> str:
        return self.actor_username or "system"


class PendingAuditEvent(models.Model):
    """An event recorded inside a caller's transaction, waiting to be chained.

    It commits or rolls back with the decision it describes, without taking the chain's lock;
    the flush after commit (or the beat task after a crash) moves it into ``AuditEvent``.
    """

    occurred_at = models.DateTimeField()
    actor_id = models.BigIntegerField(null=True, blank=True)
    actor_username = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=100)
    target_type = models.CharField(max_length=100, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    target_repr = models.CharField(max_length=200, blank=True)
    details = models.JSONField(default=dict, blank=True)
    restricted_details = models.JSONField(default=dict, blank=True)

    class Meta:
        default_permissions = ()

    def __str__(self) -> str:
        return f"pending {self.action}"


class AuditChainHead(models.Model):
    """The single row naming the chain's last event, so that removing the tail is detectable."""

    id = models.SmallIntegerField(primary_key=True, default=1)
    last_id = models.BigIntegerField(default=0)
    last_hash = models.CharField(max_length=64, default=GENESIS_HASH)
    count = models.BigIntegerField(default=0)

    class Meta:
        default_permissions = ()
        constraints = [
            models.CheckConstraint(condition=models.Q(id=1), name="audit_chain_head_single_row")
        ]

    def __str__(self) -> str:
        return f"head #{self.last_id} ({self.count} events)"


# --- access records -----------------------------------------------------------------------------


class AccessRecord(models.Model):
    """One request or run served to an integration: the bounded recent log.

    Pruned daily after INTERCHANGE_ACCESS_LOG_RETENTION_DAYS; the hourly aggregate keeps the
    long view.
    """

    occurred_at = models.DateTimeField(db_index=True)
    integration_id = models.BigIntegerField(null=True, blank=True)
    channel = models.CharField(max_length=32, choices=Channel.choices)
    endpoint = models.CharField(max_length=200)
    status_code = models.PositiveSmallIntegerField()
    records = models.PositiveIntegerField(default=0)
    duration_ms = models.PositiveIntegerField(default=0)
    client_id = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ["-occurred_at"]
        default_permissions = ("view",)
        indexes = [
            models.Index(fields=["integration_id", "occurred_at"], name="audit_access_integration")
        ]

    def __str__(self) -> str:
        return f"{self.channel} {self.endpoint} {self.status_code}"


class AccessHourly(models.Model):
    """Requests, errors, records and time per integration, channel, endpoint and hour (UTC)."""

    integration_id = models.BigIntegerField(null=True, blank=True)
    channel = models.CharField(max_length=32, choices=Channel.choices)
    endpoint = models.CharField(max_length=200)
    hour = models.DateTimeField()
    requests = models.BigIntegerField(default=0)
    errors = models.BigIntegerField(default=0)
    records = models.BigIntegerField(default=0)
    duration_ms_total = models.BigIntegerField(default=0)
    duration_ms_max = models.IntegerField(default=0)

    class Meta:
        ordering = ["-hour"]
        default_permissions = ("view",)
        verbose_name = "access (hourly)"
        verbose_name_plural = "access (hourly)"
        constraints = [
            # NULLS NOT DISTINCT: requests without an integration (a refused token) aggregate too.
            models.UniqueConstraint(
                fields=["integration_id", "channel", "endpoint", "hour"],
                nulls_distinct=False,
                name="audit_access_hourly_key",
            )
        ]
        indexes = [models.Index(fields=["hour"], name="audit_access_hourly_hour")]

    def __str__(self) -> str:
        return f"{self.channel} {self.endpoint} {self.hour:%Y-%m-%d %H}h"

    @property
    def mean_duration_ms(self) -> int:
        return self.duration_ms_total // self.requests if self.requests else 0


# --- disclosure ledger --------------------------------------------------------------------------


class Disclosure(models.Model):
    """A pupil's data of some field classes went to an integration through a channel, day to day.

    One row covers a run of consecutive days (first_day..last_day), so a pupil disclosed every
    school day costs one row per term, not one per request. ``field_classes`` is a bitmask over
    ``FieldClass`` (``field_classes_mask``). ``user_sourced_id`` is the roster's
    pseudonymous sourcedId, never a name.
    """

    user_sourced_id = models.TextField(db_collation="C", )
    vendor_id = models.BigIntegerField()
    integration_id = models.BigIntegerField()
    channel = models.CharField(max_length=32, choices=Channel.choices)
    field_classes = models.SmallIntegerField()
    first_day = models.DateField()
    last_day = models.DateField()

    class Meta:
        ordering = ["-last_day"]
        default_permissions = ("view",)
        constraints = [
            models.UniqueConstraint(
                fields=[
                    "integration_id",
                    "channel",
                    "field_classes",
                    "user_sourced_id",
                    "first_day",
                ],
                name="audit_disclosure_key",
            ),
            models.CheckConstraint(
                condition=models.Q(last_day__gte=models.F("first_day")),
                name="audit_disclosure_days_ordered",
            ),
        ]
        indexes = [
            models.Index(fields=["user_sourced_id", "first_day"], name="audit_disclosure_user"),
            models.Index(fields=["vendor_id", "last_day"], name="audit_disclosure_vendor"),
            models.Index(fields=["last_day", "first_day"], name="audit_disclosure_days"),
        ]

    def __str__(self) -> str:
        return f"{self.user_sourced_id} → integration {self.integration_id} ({self.channel})"
