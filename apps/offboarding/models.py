"""Offboarding records, control packs, and the DPO's view of the disclosure ledger.

An offboarding is the evidence that a data flow was ended: each step is a row with who did
it, when, and what the channels reported back, and the closing certificate is a signed
document over all of them. Control packs are the files handed to auditors; they are stored
encrypted and only their hashes and signing key id live here.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from apps.audit.models import Disclosure, FieldClass


class OffboardingTrigger(models.TextChoices):
    MANUAL = "manual", "Opened by hand"
    CONTRACT_END = "contract_end", "Contract ended"


class OffboardingStatus(models.TextChoices):
    OPEN = "open", "Open"
    CLOSED = "closed", "Closed (certificate issued)"


class StepName(models.TextChoices):
    """The steps, in the order they are taken (the certificate lists them in this order)."""

    CHANNELS_STOPPED = "channels_stopped", "1. Integrations set to offboarding"
    CREDENTIALS_REVOKED = "credentials_revoked", "2. Credentials revoked by each channel"
    FILES_PURGED = "files_purged", "3. Staged bundles and files purged"
    DELETION_REQUESTED = "deletion_requested", "4a. Deletion requested from the vendor"
    DELETION_CONFIRMED = "deletion_confirmed", "4b. Vendor confirmed deletion"
    CLOSED = "closed", "5. Closed with a certificate"


class Offboarding(models.Model):
    """Ending the data flow to one integration, or to every integration of a vendor.

    ``opened_at`` is the decision; the time from it to the last successful access of any of
    the integrations is measured at close (``last_access_at``, ``seconds_to_last_access``).
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    vendor = models.ForeignKey(
        "vendors.Vendor", on_delete=models.PROTECT, related_name="offboardings"
    )
    integration = models.ForeignKey(
        "vendors.Integration", null=True, blank=True, on_delete=models.PROTECT,
        related_name="offboardings", help_text="Empty: every integration of the vendor.",
    )
    integration_ids = models.JSONField(
        default=list, editable=False,
        help_text="The integrations covered, fixed when the channels were stopped.",
    )
    trigger = models.CharField(
        max_length=20, choices=OffboardingTrigger.choices, default=OffboardingTrigger.MANUAL
    )
    contract = models.ForeignKey(
        "vendors.Contract", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(
        max_length=10, choices=OffboardingStatus.choices, default=OffboardingStatus.OPEN
    )
    reason = models.TextField()
    opened_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+", help_text="Empty: opened by the scheduled contract check.",
    )
    opened_at = models.DateTimeField()

    # Step 4: the deletion request, per the agreement.
    deletion_requested_at = models.DateTimeField(null=True, blank=True)
    deletion_requested_to = models.CharField(max_length=300, blank=True)
    deletion_due_on = models.DateField(null=True, blank=True)
    deletion_confirmed_at = models.DateTimeField(null=True, blank=True)
    deletion_confirmation = models.TextField(blank=True)
    evidence_name = models.CharField(max_length=255, blank=True)
    evidence_path = models.CharField(max_length=500, blank=True, editable=False)
    evidence_sha256 = models.CharField(max_length=64, blank=True, editable=False)
    evidence_bytes = models.BigIntegerField(null=True, blank=True, editable=False)
    chase_count = models.PositiveIntegerField(default=0)
    last_chased_at = models.DateTimeField(null=True, blank=True)

    # Close.
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )
    last_access_at = models.DateTimeField(
        null=True, blank=True, help_text="The last successful access by any covered integration."
    )
    seconds_to_last_access = models.BigIntegerField(
        null=True, blank=True,
        help_text="From the decision to the last successful access (negative: none after it).",
    )
    certificate = models.TextField(blank=True, editable=False, help_text="Signed JWS (RS256).")
    certificate_kid = models.CharField(max_length=64, blank=True, editable=False)
    # Access attempts after close are alerted once each: the check resumes from here.
    attempts_checked_until = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-opened_at"]
        permissions = [("run_offboarding", "Can run offboarding steps and close offboardings")]
        constraints = [
            models.UniqueConstraint(
                fields=["vendor"], condition=Q(status="open", integration__isnull=True),
                name="offboarding_one_open_per_vendor",
            ),
            models.UniqueConstraint(
                fields=["integration"], condition=Q(status="open"),
                name="offboarding_one_open_per_integration",
            ),
        ]

    def __str__(self) -> str:
        what = self.integration.name if self.integration_id else f"vendor {self.vendor}"
        return f"Offboarding of {what}"

    @property
    def is_closed(self) -> bool:
        return self.status == OffboardingStatus.CLOSED


class OffboardingStep(models.Model):
    """One step taken, with what it produced (receivers' summaries, counts, dates)."""

    offboarding = models.ForeignKey(Offboarding, on_delete=models.CASCADE, related_name="steps")
    step = models.CharField(max_length=30, choices=StepName.choices)
    done_at = models.DateTimeField()
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )
    evidence = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["offboarding", "done_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["offboarding", "step"], name="offboarding_step_once"),
        ]

    def __str__(self) -> str:
        return self.get_step_display()


class ControlPackState(models.TextChoices):
    QUEUED = "queued", "Queued"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


class ControlPack(models.Model):
    """A signed evidence pack exported for one vendor; the zip is stored encrypted.

    Built by a worker (a large vendor's pack reads a year of access records and disclosures
    and prints a PDF: tens of seconds, too long for a request), so a pack is recorded as
    queued when asked for and becomes ready, with its file, or failed, with the reason."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    vendor = models.ForeignKey("vendors.Vendor", on_delete=models.PROTECT, related_name="+")
    period_from = models.DateField(null=True, blank=True)
    period_to = models.DateField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    path = models.CharField(max_length=500, editable=False)
    manifest_sha256 = models.CharField(max_length=64, editable=False)
    kid = models.CharField(max_length=64, editable=False)
    size_bytes = models.BigIntegerField(default=0, editable=False)
    files = models.PositiveIntegerField(default=0, editable=False)
    state = models.CharField(max_length=10, choices=ControlPackState.choices,
                             default=ControlPackState.QUEUED, editable=False)
    error = models.TextField(blank=True, editable=False)
    built_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        permissions = [("export_controlpack", "Can export signed control packs")]

    def __str__(self) -> str:
        return f"Control pack {self.vendor} {self.created_at:%Y-%m-%d %H:%M}"

    @property
    def filename(self) -> str:
        slug = "".join(c if c.isalnum() else "-" for c in self.vendor.name).strip("-").lower()
        return f"control-pack-{slug}-{self.created_at:%Y%m%d-%H%M%S}.zip"


class DisclosureHistory(Disclosure):
    """The disclosure ledger seen per pupil, for the data protection officer (a proxy: no table)."""

    class Meta:
        proxy = True
        default_permissions = ()
        permissions = [("view_disclosurehistory", "Can look up a pupil's disclosure history")]
        verbose_name = "disclosure history"
        verbose_name_plural = "disclosure history"


class IncidentKind(models.TextChoices):
    SUSPECTED_BREACH = "suspected_breach", "Suspected personal-data breach"
    MISDIRECTED_DATA = "misdirected_data", "Data sent to the wrong recipient"
    OTHER = "other", "Other security incident"


class IncidentStatus(models.TextChoices):
    OPEN = "open", "Open"
    CLOSED = "closed", "Closed"


class Incident(models.Model):
    """A suspected breach or misdirected data involving a vendor, with the notification clock.

    The clock runs from discovery (``INCIDENT_NOTIFY_HOURS``, 72 by default: the GDPR's
    deadline to tell the supervisory authority); it stops when the authority is told or the
    incident is closed as not notifiable. Counts and classes only: never who was affected.
    """

    vendor = models.ForeignKey("vendors.Vendor", on_delete=models.PROTECT,
                               related_name="incidents")
    integration = models.ForeignKey("vendors.Integration", null=True, blank=True,
                                    on_delete=models.PROTECT, related_name="incidents")
    kind = models.CharField(max_length=30, choices=IncidentKind.choices)
    title = models.CharField("what happened", max_length=300)
    description = models.TextField(blank=True)
    discovered_at = models.DateTimeField()
    data_classes = ArrayField(
        models.CharField(max_length=30, choices=FieldClass.choices), default=list, blank=True,
        help_text="Classes of personal data involved.",
    )
    people_affected = models.PositiveIntegerField(null=True, blank=True,
                                                  help_text="How many people, if known.")
    reported_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                    on_delete=models.SET_NULL, related_name="+")
    recorded_at = models.DateTimeField(auto_now_add=True)
    authority_notified_at = models.DateTimeField(
        null=True, blank=True, help_text="When the supervisory authority was told.")
    notified = models.TextField("who was told", blank=True,
                                help_text="Authority, vendor, DPO, families: who, when, how.")
    status = models.CharField(max_length=10, choices=IncidentStatus.choices,
                              default=IncidentStatus.OPEN)
    closed_at = models.DateTimeField(null=True, blank=True)
    resolution = models.TextField(blank=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["-discovered_at"]
        indexes = [models.Index(fields=["status", "discovered_at"], name="offb_incident_open")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.vendor} ({self.discovered_at:%Y-%m-%d})"
