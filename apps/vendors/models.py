"""Vendors, what the school has agreed with them, and the integrations that connect them.

A vendor is the legal party; an integration is one technical connection to it (one
credential each, never a shared client). Governance reads three facts from here
before it approves any data flow: is there a *current* data-processing agreement, what
does its schedule of data allow, and is there a *current* security review. Those
facts are derived from dates (``is_current_on``), never from a flag someone must
remember to clear, so an agreement or review lapses on its own.

Levers are state: ``Vendor.status`` and ``Integration.status`` are what every spoke
reads (``Integration.is_live``) on its next request or run.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q
from django.utils import timezone
from simple_history.models import HistoricalRecords

from apps.audit.models import FieldClass

# A security review or agreement that lapses within this many days is shown as "expiring".
EXPIRING_SOON_DAYS = 30
# Security reviews are valid for a year unless the reviewer says otherwise.
SECURITY_REVIEW_VALID_DAYS = 365


def _today() -> dt.date:
    return timezone.localdate()


# --------------------------------------------------------------------------------------------
# Vendor
# --------------------------------------------------------------------------------------------


class VendorStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    SUSPENDED = "suspended", "Suspended"
    OFFBOARDED = "offboarded", "Offboarded"


class Vendor(models.Model):
    """The legal party the school shares data with."""

    name = models.CharField(max_length=200, unique=True)
    website = models.URLField(blank=True)
    description = models.TextField(blank=True)
    status = models.CharField(
        max_length=20, choices=VendorStatus.choices, default=VendorStatus.ACTIVE
    )
    status_reason = models.TextField(blank=True)
    status_changed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_suspended(self) -> bool:
        return self.status != VendorStatus.ACTIVE

    def current_agreement(self, on: dt.date | None = None) -> DataProcessingAgreement | None:
        """The most recently signed agreement in force on ``on`` (today by default)."""
        return (
            DataProcessingAgreement.objects.current(on).filter(vendor=self)
            .order_by("-signed_on", "-id").first()
        )

    def current_security_review(self, on: dt.date | None = None) -> SecurityReview | None:
        return (
            SecurityReview.objects.current(on).filter(vendor=self)
            .order_by("-reviewed_on", "-id").first()
        )

    def security_contact(self) -> VendorContact | None:
        return self.contacts.filter(role=ContactRole.SECURITY).order_by("id").first()


class ContactRole(models.TextChoices):
    PRIMARY = "primary", "Primary (account)"
    SECURITY = "security", "Security"
    INCIDENT = "incident", "Incident reporting"
    DATA_PROTECTION = "data_protection", "Data protection officer"
    TECHNICAL = "technical", "Technical"
    BILLING = "billing", "Billing"


class VendorContact(models.Model):
    """A person at the vendor. Expiry notices go to the primary and data-protection contacts;
    incidents to the incident and security contacts."""

    vendor = models.ForeignKey(Vendor, on_delete=models.CASCADE, related_name="contacts")
    role = models.CharField(max_length=20, choices=ContactRole.choices)
    name = models.CharField(max_length=200)
    email = models.EmailField()
    phone = models.CharField(max_length=50, blank=True)
    notes = models.TextField(blank=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["vendor", "role", "name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_role_display()})"


# --------------------------------------------------------------------------------------------
# Contracts, agreements, reviews
# --------------------------------------------------------------------------------------------


class DatedQuerySet(models.QuerySet):
    """``current(on)``: rows in force on a date, for models with a start and an optional end."""

    start_field = "starts_on"
    end_field = "ends_on"

    def current(self, on: dt.date | None = None):
        on = on or _today()
        return self.filter(
            Q(**{f"{self.start_field}__lte": on}),
            Q(**{f"{self.end_field}__isnull": True}) | Q(**{f"{self.end_field}__gt": on}),
        )


class ContractQuerySet(DatedQuerySet):
    pass


class Contract(models.Model):
    vendor = models.ForeignKey(Vendor, on_delete=models.CASCADE, related_name="contracts")
    reference = models.CharField(max_length=100)
    title = models.CharField(max_length=200, blank=True)
    starts_on = models.DateField()
    ends_on = models.DateField(null=True, blank=True, help_text="Empty: open-ended.")
    renewal_on = models.DateField(
        null=True, blank=True, help_text="When the renewal decision is due."
    )
    auto_renews = models.BooleanField(default=False)
    notes = models.TextField(blank=True)

    objects = ContractQuerySet.as_manager()
    history = HistoricalRecords()

    class Meta:
        ordering = ["vendor", "-starts_on"]
        constraints = [
            models.UniqueConstraint(fields=["vendor", "reference"], name="vendors_contract_ref"),
            models.CheckConstraint(
                condition=Q(ends_on__isnull=True) | Q(ends_on__gt=models.F("starts_on")),
                name="vendors_contract_dates",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.vendor} {self.reference}"

    def is_current_on(self, on: dt.date | None = None) -> bool:
        on = on or _today()
        return self.starts_on <= on and (self.ends_on is None or self.ends_on > on)


class AgreementQuerySet(DatedQuerySet):
    start_field = "signed_on"
    end_field = "expires_on"

    def current(self, on: dt.date | None = None):
        on = on or _today()
        return super().current(on).filter(Q(terminated_on__isnull=True) | Q(terminated_on__gt=on))


class DataProcessingAgreement(models.Model):
    """The data-processing agreement and its schedule of data.

    The schedule (``allowed_field_classes`` and ``allowed_fields``) is the ceiling for
    every approval: governance refuses to approve a request that asks for more.
    """

    vendor = models.ForeignKey(Vendor, on_delete=models.CASCADE, related_name="agreements")
    contract = models.ForeignKey(
        Contract, null=True, blank=True, on_delete=models.SET_NULL, related_name="agreements"
    )
    reference = models.CharField(max_length=100)
    signed_on = models.DateField()
    expires_on = models.DateField(null=True, blank=True, help_text="Empty: until terminated.")
    terminated_on = models.DateField(null=True, blank=True)
    retention_commitment = models.TextField(
        help_text="How long the vendor keeps the data while the service runs."
    )
    deletion_commitment = models.TextField(
        help_text="What the vendor deletes, and how fast, when the service ends or on request."
    )
    incident_reporting_commitment = models.TextField(
        help_text="How and how fast the vendor reports a personal-data incident."
    )
    incident_reporting_hours = models.PositiveIntegerField(
        null=True, blank=True, help_text="Hours to notify the school of an incident (e.g. 72)."
    )
    allowed_field_classes = ArrayField(
        models.CharField(max_length=30, choices=FieldClass.choices),
        default=list,
        blank=True,
        help_text="Schedule of data: classes of field the vendor may receive.",
    )
    allowed_fields = ArrayField(
        models.CharField(max_length=100),
        default=list,
        blank=True,
        help_text='Schedule of data: single fields allowed beyond those classes ("users.email").',
    )
    notes = models.TextField(blank=True)

    objects = AgreementQuerySet.as_manager()
    history = HistoricalRecords()

    class Meta:
        ordering = ["vendor", "-signed_on"]
        verbose_name = "data-processing agreement"
        constraints = [
            models.UniqueConstraint(fields=["vendor", "reference"], name="vendors_dpa_ref"),
        ]

    def __str__(self) -> str:
        return f"{self.vendor} DPA {self.reference}"

    def is_current_on(self, on: dt.date | None = None) -> bool:
        on = on or _today()
        return (
            self.signed_on <= on
            and (self.expires_on is None or self.expires_on > on)
            and (self.terminated_on is None or self.terminated_on > on)
        )


class ReviewOutcome(models.TextChoices):
    PASSED = "passed", "Passed"
    PASSED_WITH_ACTIONS = "passed_with_actions", "Passed with actions"
    FAILED = "failed", "Failed"


class SecurityReviewQuerySet(models.QuerySet):
    def current(self, on: dt.date | None = None):
        """Reviews that count: not failed, already done, not yet expired."""
        on = on or _today()
        return self.exclude(outcome=ReviewOutcome.FAILED).filter(
            reviewed_on__lte=on, expires_on__gt=on
        )


# The checklist, in the order a reviewer works through it.
SECURITY_CHECKLIST = (
    ("key_management", "Key management"),
    ("incident_reporting", "Incident reporting"),
    ("retention", "Retention and deletion"),
    ("mfa", "MFA for vendor staff"),
    ("encryption", "Encryption in transit and at rest"),
)


def _review_expiry_default() -> dt.date:
    return _today() + dt.timedelta(days=SECURITY_REVIEW_VALID_DAYS)


class SecurityReview(models.Model):
    """One security review of a vendor. A review past ``expires_on`` is stale and no longer
    counts: governance then refuses new approvals for the vendor until it is reviewed again."""

    vendor = models.ForeignKey(Vendor, on_delete=models.CASCADE, related_name="security_reviews")
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )
    reviewed_on = models.DateField(default=_today)
    expires_on = models.DateField(default=_review_expiry_default)
    outcome = models.CharField(
        max_length=30, choices=ReviewOutcome.choices, default=ReviewOutcome.PASSED
    )
    key_management = models.BooleanField("key management", default=False)
    incident_reporting = models.BooleanField("incident reporting", default=False)
    retention = models.BooleanField("retention and deletion", default=False)
    mfa = models.BooleanField("MFA", default=False)
    encryption = models.BooleanField("encryption", default=False)
    notes = models.TextField(blank=True)

    objects = SecurityReviewQuerySet.as_manager()
    history = HistoricalRecords()

    class Meta:
        ordering = ["vendor", "-reviewed_on"]
        constraints = [
            models.CheckConstraint(
                condition=Q(expires_on__gt=models.F("reviewed_on")),
                name="vendors_review_dates",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.vendor} review {self.reviewed_on}"

    @property
    def checklist(self) -> dict[str, bool]:
        return {key: bool(getattr(self, key)) for key, _ in SECURITY_CHECKLIST}

    @property
    def checklist_passed(self) -> int:
        return sum(self.checklist.values())

    def is_stale(self, on: dt.date | None = None) -> bool:
        return self.expires_on <= (on or _today())

    def is_expiring(self, on: dt.date | None = None) -> bool:
        on = on or _today()
        return on < self.expires_on <= on + dt.timedelta(days=EXPIRING_SOON_DAYS)

    def is_current_on(self, on: dt.date | None = None) -> bool:
        on = on or _today()
        return (
            self.outcome != ReviewOutcome.FAILED
            and self.reviewed_on <= on < self.expires_on
        )


# --------------------------------------------------------------------------------------------
# Integrations
# --------------------------------------------------------------------------------------------


class IntegrationKind(models.TextChoices):
    ONEROSTER_REST = "oneroster_rest", "OneRoster REST"
    ONEROSTER_CSV = "oneroster_csv", "OneRoster CSV delivery"
    LTI_TOOL = "lti_tool", "LTI 1.3 tool"


class Environment(models.TextChoices):
    SANDBOX = "sandbox", "Sandbox"
    STAGING = "staging", "Staging"
    PRODUCTION = "production", "Production"


class IntegrationStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    ACTIVE = "active", "Active"
    SUSPENDED = "suspended", "Suspended"
    OFFBOARDING = "offboarding", "Offboarding"
    OFFBOARDED = "offboarded", "Offboarded"


def _default_environment() -> str:
    return settings.INTERCHANGE_ENVIRONMENT


class Integration(models.Model):
    """One connection to a vendor, with its own credentials (issued by the spoke apps).

    What it may receive is not stored here: it is the union of its live approved scope
    requests (``apps.governance.selectors.grant.effective_grant``), so there is exactly one
    place where access is granted.
    """

    vendor = models.ForeignKey(Vendor, on_delete=models.PROTECT, related_name="integrations")
    name = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=20, choices=IntegrationKind.choices)
    environment = models.CharField(
        max_length=20, choices=Environment.choices, default=_default_environment
    )
    status = models.CharField(
        max_length=20, choices=IntegrationStatus.choices, default=IntegrationStatus.DRAFT
    )
    status_reason = models.TextField(blank=True)
    status_changed_at = models.DateTimeField(null=True, blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="owned_integrations",
        help_text="The member of staff accountable for this connection.",
    )
    pseudonymised = models.BooleanField(
        default=True,
        help_text="Send stable per-vendor pseudonyms instead of the school's identifiers.",
    )
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["vendor__name", "name"]
        indexes = [models.Index(fields=["vendor", "status"], name="vendors_integ_vendor_status")]

    def __str__(self) -> str:
        return self.name

    @property
    def is_live(self) -> bool:
        """What every spoke checks first: an active integration of an active vendor."""
        return self.status == IntegrationStatus.ACTIVE and self.vendor.status == VendorStatus.ACTIVE
