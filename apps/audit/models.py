"""Models of the audit app: the hash-chained audit log, access records and the disclosure ledger.

Everything here is a record, not state: rows are appended by the services in this app and
read by oversight (monitoring, offboarding, auditors). No foreign key points upward to a
later layer (vendors, integrations): those are plain integer ids, so the base layer never
imports what stands on it.
"""

from __future__ import annotations

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
