"""Deliveries: where a OneRoster CSV integration's bundles go, and every run that sends one.

A ``Destination`` belongs to one ``oneroster_csv`` integration and says how bundles leave
the hub: pushed over SFTP (key-based auth, pinned host key) or pulled through an expiring
signed HTTPS link. A ``DeliveryRun`` is one attempt-carrying record per destination and
requested roster version (its ``idempotency_key`` makes a replayed or redelivered task a
no-op); its state only reaches ``delivered`` once the bytes are on the far side. A
``Bundle`` is the rendered zip, encrypted at rest (apps/keys/files.py) until the retention
purge removes it. ``SisSource`` is the other direction: a SIS's SFTP drop or OneRoster
REST provider feeding the ingest pipeline; ``SourcePickup`` remembers each file by content
hash so a file seen twice is imported once.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class Transport(models.TextChoices):
    SFTP = "sftp", "SFTP push"
    HTTPS_PULL = "https_pull", "Signed HTTPS download link"


class DestinationState(models.TextChoices):
    ACTIVE = "active", "Active"
    PAUSED = "paused", "Paused"
    # Set when the integration's credentials are revoked (offboarding); not resumable.
    DISABLED = "disabled", "Disabled (credentials revoked)"


class Destination(models.Model):
    """How one CSV integration receives its bundles, and how far it has got."""

    integration = models.OneToOneField(
        "vendors.Integration", on_delete=models.PROTECT, related_name="delivery_destination"
    )
    transport = models.CharField(max_length=20, choices=Transport.choices)
    state = models.CharField(
        max_length=20, choices=DestinationState.choices, default=DestinationState.ACTIVE
    )
    state_reason = models.TextField(blank=True)
    # SFTP push
    sftp_host = models.CharField(max_length=255, blank=True)
    sftp_port = models.PositiveIntegerField(default=22)
    sftp_username = models.CharField(max_length=100, blank=True)
    sftp_directory = models.CharField(max_length=500, default=".", blank=True)
    # The pinned host key, as an OpenSSH public key line ("ssh-ed25519 AAAA...").
    sftp_host_key = models.TextField(blank=True)
    # The client private key, wrapped by the master key (never stored in clear).
    sftp_private_key_wrapped = models.BinaryField(blank=True, default=b"", editable=False)
    sftp_private_key_master_key_id = models.CharField(max_length=16, blank=True, editable=False)
    sftp_public_key = models.TextField(blank=True, editable=False)
    # HTTPS pull
    link_ttl_hours = models.PositiveIntegerField(default=72)
    link_single_use = models.BooleanField(default=True)
    # Scheduling: event-driven (each applied roster version) and/or every N minutes.
    event_driven = models.BooleanField(default=True)
    interval_minutes = models.PositiveIntegerField(null=True, blank=True)
    retention_days = models.PositiveIntegerField(default=7)
    # How far it has got (kept on the row so the admin's lag is one read, not a scan).
    last_delivered_version = models.PositiveIntegerField(null=True, blank=True)
    last_delivered_at = models.DateTimeField(null=True, blank=True)
    last_scheduled_at = models.DateTimeField(null=True, blank=True)
    # The release policy the last delivery was rendered under: a fingerprint of what shapes
    # a bundle (projection, org scope, overrides, pseudonymisation) and the ids of the
    # exclusions then active. A delta is only correct against the same policy; anything but
    # new exclusions makes the next delivery a bulk (apps/delivery/services.py).
    last_policy = models.JSONField(default=dict, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["integration__name"]

    def __str__(self) -> str:
        return f"{self.integration} ({self.get_transport_display()})"

    @property
    def audit_label(self) -> str:
        return f"destination {self.pk} of integration {self.integration_id}"


class RunState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RENDERING = "rendering", "Rendering"
    DELIVERING = "delivering", "Delivering"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"


RUN_TRANSITIONS: dict[str, set[str]] = {
    RunState.QUEUED: {RunState.RENDERING, RunState.SKIPPED, RunState.FAILED},
    # a retry goes back to queued; a worker killed mid-run leaves rendering/delivering and
    # the redelivered task starts the attempt again
    RunState.RENDERING: {RunState.DELIVERING, RunState.QUEUED, RunState.FAILED,
                         RunState.SKIPPED, RunState.RENDERING},
    RunState.DELIVERING: {RunState.DELIVERED, RunState.QUEUED, RunState.FAILED,
                          RunState.RENDERING},
    # a replay re-queues a finished run (same key: never a second run for one version)
    RunState.DELIVERED: {RunState.QUEUED},
    RunState.FAILED: {RunState.QUEUED},
    RunState.SKIPPED: {RunState.QUEUED},
}
FINAL_RUN_STATES = frozenset({RunState.DELIVERED, RunState.FAILED, RunState.SKIPPED})


class RunMode(models.TextChoices):
    BULK = "bulk", "Bulk"
    DELTA = "delta", "Delta"


class RunReason(models.TextChoices):
    EVENT = "event", "Roster version applied"
    SCHEDULE = "schedule", "Schedule"
    MANUAL = "manual", "Manual"
    REPLAY = "replay", "Replay"
    ROLLBACK = "rollback", "Rollback"


class DeliveryRun(models.Model):
    """One delivery to one destination, with its state, attempts and what it sent."""

    destination = models.ForeignKey(Destination, on_delete=models.PROTECT, related_name="runs")
    # (destination, requested version, purpose): a second enqueue of the same is the same run
    idempotency_key = models.CharField(max_length=200, unique=True)
    state = models.CharField(max_length=20, choices=RunState.choices, default=RunState.QUEUED)
    reason = models.CharField(max_length=20, choices=RunReason.choices, default=RunReason.MANUAL)
    # What was asked for (the event's version) and what was sent (coalesced to the latest).
    requested_version = models.PositiveIntegerField(null=True, blank=True)
    force_bulk = models.BooleanField(default=False)
    mode = models.CharField(max_length=10, choices=RunMode.choices, blank=True)
    version_from = models.PositiveIntegerField(null=True, blank=True)
    version_to = models.PositiveIntegerField(null=True, blank=True)
    bundle = models.ForeignKey(
        "Bundle", null=True, blank=True, on_delete=models.SET_NULL, related_name="runs"
    )
    counts = models.JSONField(default=dict, blank=True)
    bytes_sent = models.BigIntegerField(default=0)
    remote_name = models.CharField(max_length=300, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    error_code = models.CharField(max_length=50, blank=True)
    error = models.TextField(blank=True)
    timings = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        permissions = [("operate_delivery", "Can deliver, replay, roll back, pause and resume")]
        indexes = [
            models.Index(fields=["destination", "state"], name="delivery_run_dest_state"),
            # the drain only ever looks at live runs
            models.Index(fields=["destination", "requested_version"], name="delivery_run_live",
                         condition=~Q(state__in=["delivered", "failed", "skipped"])),
        ]

    def __str__(self) -> str:
        return f"run #{self.pk} {self.state}"

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_RUN_STATES


class Bundle(models.Model):
    """A rendered OneRoster CSV zip, encrypted at rest; purged after the retention window."""

    destination = models.ForeignKey(Destination, on_delete=models.PROTECT, related_name="bundles")
    mode = models.CharField(max_length=10, choices=RunMode.choices)
    version_from = models.PositiveIntegerField(null=True, blank=True)
    version_to = models.PositiveIntegerField()
    path = models.CharField(max_length=500, blank=True)
    data_key_id = models.UUIDField(null=True, blank=True)
    size_bytes = models.BigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True)
    counts = models.JSONField(default=dict, blank=True)
    # The release policy it was rendered under (see Destination.last_policy).
    policy = models.JSONField(default=dict, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    purged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"bundle #{self.pk} {self.mode} v{self.version_to}"

    @property
    def is_purged(self) -> bool:
        return self.purged_at is not None


class DownloadLink(models.Model):
    """A capability to download one bundle: only the token's hash is stored."""

    destination = models.ForeignKey(Destination, on_delete=models.PROTECT, related_name="links")
    bundle = models.ForeignKey(Bundle, on_delete=models.PROTECT, related_name="links")
    run = models.ForeignKey(
        DeliveryRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="links"
    )
    token_sha256 = models.CharField(max_length=64, unique=True)
    expires_at = models.DateTimeField()
    single_use = models.BooleanField(default=True)
    used_at = models.DateTimeField(null=True, blank=True)
    downloads = models.PositiveIntegerField(default=0)
    revoked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"link #{self.pk} for bundle {self.bundle_id}"


class SourceTransport(models.TextChoices):
    SFTP = "sftp", "SFTP pickup"
    ONEROSTER_REST = "oneroster_rest", "OneRoster REST pull"


class SisSource(models.Model):
    """A SIS the hub pulls from, feeding one roster source through the ingest pipeline."""

    name = models.SlugField(max_length=100, unique=True)
    roster_source = models.ForeignKey(
        "roster.Source", on_delete=models.PROTECT, related_name="+"
    )
    transport = models.CharField(max_length=20, choices=SourceTransport.choices)
    enabled = models.BooleanField(default=True)
    # SFTP pickup
    sftp_host = models.CharField(max_length=255, blank=True)
    sftp_port = models.PositiveIntegerField(default=22)
    sftp_username = models.CharField(max_length=100, blank=True)
    sftp_directory = models.CharField(max_length=500, default=".", blank=True)
    sftp_host_key = models.TextField(blank=True)
    sftp_private_key_wrapped = models.BinaryField(blank=True, default=b"", editable=False)
    sftp_private_key_master_key_id = models.CharField(max_length=16, blank=True, editable=False)
    # OneRoster REST pull (client credentials; the secret wrapped by the master key)
    rest_base_url = models.URLField(blank=True)
    rest_token_url = models.URLField(blank=True)
    rest_client_id = models.CharField(max_length=200, blank=True)
    rest_client_secret_wrapped = models.BinaryField(blank=True, default=b"", editable=False)
    rest_client_secret_master_key_id = models.CharField(max_length=16, blank=True, editable=False)
    rest_scope = models.CharField(max_length=500, blank=True)
    rest_page_size = models.PositiveIntegerField(default=500)
    interval_minutes = models.PositiveIntegerField(null=True, blank=True)
    last_polled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "SIS source"

    def __str__(self) -> str:
        return self.name


class SourcePickup(models.Model):
    """One file (or REST snapshot) taken from a SIS source, remembered by content hash."""

    sis_source = models.ForeignKey(SisSource, on_delete=models.PROTECT, related_name="pickups")
    file_name = models.CharField(max_length=300)
    sha256 = models.CharField(max_length=64)
    size_bytes = models.BigIntegerField(default=0)
    # The server's modification time: a file listed again with the same name, size and time
    # is skipped without being downloaded to hash it.
    remote_mtime = models.BigIntegerField(null=True, blank=True)
    import_run = models.ForeignKey(
        "roster.ImportRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["sis_source", "sha256"], name="delivery_pickup_once"),
        ]

    def __str__(self) -> str:
        return f"{self.sis_source} {self.file_name}"

