"""Exclusions and overrides: what safeguarding officers set, and the release policy obeys.

An *exclusion* withholds one person (by roster sourcedId, so a pupil can be excluded
before the SIS has ever sent them) from every vendor, one vendor, or one integration, for
a bounded time. To a vendor the pupil then looks exactly like one who left.

An *override* is a time-bound correction applied at release: the preferred name a
protected child must be known by, a role correction in one class, or hiding a user's
directory data.

Both are restricted records: who is excluded, and why, is visible to safeguarding
officers only. Their ``__str__`` and ``audit_label`` therefore name the record, never the
person, so that audit events, history lists, alerts and admin log entries seen by other
staff cannot leak it.

Time is explicit (``starts_at`` / ``ends_at`` / ``lifted_at``) so that "was this pupil
withheld from vendor X on date D" is a query, and an exclusion expires by itself: nothing
has to run for it to stop applying, exactly at ``ends_at``.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from simple_history.models import HistoricalRecords

# Pseudonym keys and the reverse map are models of this half of the app too.
from apps.vendors.models import Integration

from .pseudonyms import PseudonymMap, VendorPseudonymKey

__all__ = [
    "MAX_DURATION",
    "Exclusion",
    "ExclusionHit",
    "ExclusionReason",
    "ExclusionScope",
    "IntegrationAccess",
    "Override",
    "OverrideKind",
    "PseudonymMap",
    "VendorPseudonymKey",
]

# "At most one year" in the database as a backstop; the services check the calendar year
# exactly (a leap day included).
MAX_DURATION = dt.timedelta(days=366)


class ExclusionScope(models.TextChoices):
    ALL_VENDORS = "all", "All vendors"
    VENDOR = "vendor", "One vendor"
    INTEGRATION = "integration", "One integration"


class ExclusionReason(models.TextChoices):
    CHILD_PROTECTION = "child_protection", "Child protection plan"
    COURT_ORDER = "court_order", "Court order"
    PROTECTED_IDENTITY = "protected_identity", "Protected identity (e.g. adoption, witness)"
    PARENTAL_OBJECTION = "parental_objection", "Parental objection"
    DATA_SUBJECT_OBJECTION = "data_subject_objection", "Data subject objection"
    LOOKED_AFTER_CHILD = "looked_after_child", "Looked-after child arrangement"
    OTHER = "other", "Other (see note)"


class ExclusionQuerySet(models.QuerySet):
    def active(self, at: dt.datetime | None = None) -> ExclusionQuerySet:
        """In force at ``at``: started, not ended (the end is exclusive), not lifted."""
        at = at or timezone.now()
        return self.filter(starts_at__lte=at, ends_at__gt=at).filter(
            Q(lifted_at__isnull=True) | Q(lifted_at__gt=at)
        )

    def applying_to(self, integration) -> ExclusionQuerySet:  # type: ignore[no-untyped-def]
        """Those that reach this integration: all vendors, its vendor, or itself."""
        return self.filter(
            Q(scope=ExclusionScope.ALL_VENDORS)
            | Q(scope=ExclusionScope.VENDOR, vendor_id=integration.vendor_id)
            | Q(scope=ExclusionScope.INTEGRATION, integration_id=integration.pk)
        )


class Exclusion(models.Model):
    """One person withheld from vendors for a bounded time (safeguarding officers only)."""

    user_sourced_id = models.CharField(
        "roster sourcedId", max_length=255, db_index=True,
        help_text="The person's sourcedId in the roster. They need not be imported yet.",
        db_collation="C",
    )
    scope = models.CharField(max_length=20, choices=ExclusionScope.choices)
    vendor = models.ForeignKey(
        "vendors.Vendor", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    integration = models.ForeignKey(
        "vendors.Integration", null=True, blank=True, on_delete=models.PROTECT,
        related_name="+",
    )
    reason_code = models.CharField(max_length=40, choices=ExclusionReason.choices)
    note = models.TextField(
        "restricted note", blank=True,
        help_text="Seen by safeguarding officers only. Never copied into audit details.",
    )
    starts_at = models.DateTimeField(default=timezone.now)
    ends_at = models.DateTimeField(help_text="Mandatory; at most one year after the start.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    lifted_at = models.DateTimeField(null=True, blank=True)
    lifted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
        related_name="+",
    )
    lift_reason = models.TextField(blank=True)
    # Set by the scheduled sweep, so each reminder and each expiry is raised once.
    reminder_sent_at = models.DateTimeField(null=True, blank=True, editable=False)
    expiry_recorded_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = ExclusionQuerySet.as_manager()
    history = HistoricalRecords()

    class Meta:
        ordering = ["ends_at", "id"]
        indexes = [
            models.Index(fields=["ends_at"], name="gov_exclusion_open_ends",
                         condition=Q(lifted_at__isnull=True)),
        ]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(scope=ExclusionScope.ALL_VENDORS, vendor__isnull=True,
                      integration__isnull=True)
                    | Q(scope=ExclusionScope.VENDOR, vendor__isnull=False,
                        integration__isnull=True)
                    | Q(scope=ExclusionScope.INTEGRATION, vendor__isnull=True,
                        integration__isnull=False)
                ),
                name="gov_exclusion_scope_target",
            ),
            models.CheckConstraint(
                condition=Q(ends_at__gt=F("starts_at"))
                & Q(ends_at__lte=F("starts_at") + MAX_DURATION),
                name="gov_exclusion_at_most_a_year",
            ),
            models.CheckConstraint(
                condition=Q(lifted_at__isnull=True) | ~Q(lift_reason=""),
                name="gov_exclusion_lift_has_reason",
            ),
        ]

    def __str__(self) -> str:
        return f"Exclusion #{self.pk}"

    @property
    def audit_label(self) -> str:
        """What the audit log shows: the record, never the person."""
        return f"exclusion #{self.pk}"

    def is_active(self, at: dt.datetime | None = None) -> bool:
        at = at or timezone.now()
        return (
            self.starts_at <= at < self.ends_at
            and (self.lifted_at is None or self.lifted_at > at)
        )

    @property
    def state(self) -> str:
        now = timezone.now()
        if self.lifted_at is not None and self.lifted_at <= now:
            return "lifted"
        if self.ends_at <= now:
            return "expired"
        if self.starts_at > now:
            return "scheduled"
        return "active"

    def scope_label(self) -> str:
        if self.scope == ExclusionScope.VENDOR:
            return f"vendor {self.vendor}"
        if self.scope == ExclusionScope.INTEGRATION:
            return f"integration {self.integration}"
        return "all vendors"


class ExclusionHit(models.Model):
    """How much one exclusion withheld on one day: records and releases (requests or runs).

    Written only by one set-based upsert per release (``Release.record_withheld``),
    never per row, so counting costs the hot path one statement.
    """

    exclusion = models.ForeignKey(Exclusion, on_delete=models.CASCADE, related_name="hits")
    day = models.DateField()
    records = models.BigIntegerField(default=0)
    releases = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-day"]
        constraints = [
            models.UniqueConstraint(fields=["exclusion", "day"], name="gov_exclusionhit_day"),
        ]

    def __str__(self) -> str:
        return f"exclusion #{self.exclusion_id} on {self.day}: {self.records}"


class OverrideKind(models.TextChoices):
    PREFERRED_NAME = "preferred_name", "Preferred name that must be used"
    ROLE_CORRECTION = "role_correction", "Role correction in one class"
    HIDE_DIRECTORY = "hide_directory", "Hide from directory data"


class OverrideQuerySet(models.QuerySet):
    def active(self, at: dt.datetime | None = None) -> OverrideQuerySet:
        at = at or timezone.now()
        return self.filter(starts_at__lte=at, ends_at__gt=at).filter(
            Q(ended_at__isnull=True) | Q(ended_at__gt=at)
        )


class Override(models.Model):
    """A time-bound correction applied at release to every vendor.

    * ``preferred_name``: ``given_name`` / ``family_name`` (and ``middle_name``, which may
      be blank) replace the legal names and the preferred names everywhere they are
      released, e.g. for a protected child;
    * ``role_correction``: the person's enrollment role in ``class_sourced_id`` becomes
      ``role``;
    * ``hide_directory``: the person's directory and contact fields are released empty.
    """

    kind = models.CharField(max_length=20, choices=OverrideKind.choices)
    user_sourced_id = models.CharField(
        "roster sourcedId", max_length=255, db_index=True, db_collation="C"
    )
    class_sourced_id = models.CharField(
        max_length=255, blank=True, help_text="Role correction only: the class it applies to.",
        db_collation="C",
    )
    role = models.CharField(max_length=50, blank=True, help_text="Role correction only.")
    given_name = models.CharField(max_length=200, blank=True, help_text="Preferred name only.")
    middle_name = models.CharField(max_length=200, blank=True)
    family_name = models.CharField(max_length=200, blank=True)
    reason = models.TextField()
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+",
        help_text="The member of staff accountable for the correction.",
    )
    starts_at = models.DateTimeField(default=timezone.now)
    ends_at = models.DateTimeField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    ended_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
        related_name="+",
    )
    end_reason = models.TextField(blank=True)

    objects = OverrideQuerySet.as_manager()
    history = HistoricalRecords()

    class Meta:
        ordering = ["ends_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_at__gt=F("starts_at"))
                & Q(ends_at__lte=F("starts_at") + MAX_DURATION),
                name="gov_override_at_most_a_year",
            ),
            models.CheckConstraint(
                condition=~Q(kind=OverrideKind.PREFERRED_NAME)
                | (~Q(given_name="") & ~Q(family_name="")),
                name="gov_override_name_given",
            ),
            models.CheckConstraint(
                condition=~Q(kind=OverrideKind.ROLE_CORRECTION)
                | (~Q(class_sourced_id="") & ~Q(role="")),
                name="gov_override_role_given",
            ),
            models.CheckConstraint(
                condition=Q(ended_at__isnull=True) | ~Q(end_reason=""),
                name="gov_override_end_has_reason",
            ),
        ]

    def __str__(self) -> str:
        return f"Override #{self.pk} ({self.get_kind_display()})"

    @property
    def audit_label(self) -> str:
        return f"override #{self.pk}"

    def is_active(self, at: dt.datetime | None = None) -> bool:
        at = at or timezone.now()
        return (
            self.starts_at <= at < self.ends_at
            and (self.ended_at is None or self.ended_at > at)
        )


class IntegrationAccess(Integration):
    """An integration seen through the release policy: the admin's "effective access" page
    (what it can see right now) and its "suspend now" lever."""

    class Meta:
        proxy = True
        verbose_name = "effective access"
        verbose_name_plural = "effective access"
        permissions = [("suspend_integration", "Can suspend an integration at once")]
