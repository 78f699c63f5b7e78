"""Models of the monitoring app: telemetry kept over time, the rules and the alert channels.

Monitoring is oversight: it reads the base layer (audit access records and disclosures,
alerts), the roster and governance state, and never a spoke. Telemetry rows are derived
records, filled by set-based SQL (``apps/monitoring/sql.py``); rules and channels are the
only state staff edit.
"""

from __future__ import annotations

import uuid

from django.db import models

from apps.alerts.models import Alert, Severity


class RosterVersionTelemetry(models.Model):
    """What one roster version looked like and changed: totals per entity, kept for ever.

    ``totals`` is ``{"users": 1200, ...}`` (current rows as of the version); the detail per
    org and role is in ``RosterCount``.
    """

    version = models.OneToOneField(
        "roster.RosterVersion", on_delete=models.CASCADE, related_name="telemetry"
    )
    number = models.PositiveIntegerField(unique=True)
    source_name = models.CharField(max_length=100)
    applied_at = models.DateTimeField()
    kind = models.CharField(max_length=20)
    added = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    deleted = models.PositiveIntegerField(default=0)
    changes = models.JSONField(default=dict, help_text="Adds, updates and deletes per entity.")
    totals = models.JSONField(default=dict, help_text="Current rows per entity.")
    computed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-number"]
        default_permissions = ("view",)
        verbose_name = "roster version telemetry"
        verbose_name_plural = "roster version telemetry"

    def __str__(self) -> str:
        return f"v{self.number} telemetry"


class RosterCountKind(models.TextChoices):
    USERS_BY_ORG_ROLE = "users_by_org_role", "Users per org and role"
    ENROLMENTS_BY_ORG_ROLE = "enrolments_by_org_role", "Enrolments per school and role"
    ENTITY_BY_ORG = "entity_by_org", "Rows per org"


class RosterCount(models.Model):
    """One count of a roster version: users per org and role, enrolments per school and role,
    classes per school. Role distributions are sums over orgs."""

    telemetry = models.ForeignKey(
        RosterVersionTelemetry, on_delete=models.CASCADE, related_name="counts"
    )
    kind = models.CharField(max_length=30, choices=RosterCountKind.choices)
    entity = models.CharField(max_length=40)
    org_sourced_id = models.CharField(db_collation="C", max_length=255)
    role = models.CharField(max_length=50, blank=True)
    count = models.BigIntegerField()

    class Meta:
        default_permissions = ("view",)
        indexes = [models.Index(fields=["telemetry", "kind"], name="monitoring_count_kind")]

    def __str__(self) -> str:
        return f"{self.entity} {self.org_sourced_id} {self.role}: {self.count}"


class IntegrationActivity(models.Model):
    """Access telemetry per integration and day, rolled up from the base layer.

    ``AccessHourly`` already holds requests, errors and records per hour and endpoint; this
    adds what it cannot say on its own (distinct pupils disclosed, from the disclosure
    ledger) and names the channel events staff ask about, so a year of an integration is
    365 rows.
    """

    integration_id = models.BigIntegerField(null=True, blank=True)
    day = models.DateField()
    requests = models.BigIntegerField(default=0)
    errors = models.BigIntegerField(default=0)
    records = models.BigIntegerField(default=0)
    users_disclosed = models.BigIntegerField(default=0)
    token_grants = models.BigIntegerField(default=0)
    token_failures = models.BigIntegerField(default=0)
    rest_requests = models.BigIntegerField(default=0)
    launches = models.BigIntegerField(default=0)
    nrps_calls = models.BigIntegerField(default=0)
    score_posts = models.BigIntegerField(default=0)
    deliveries = models.BigIntegerField(default=0)
    delivery_failures = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["-day"]
        default_permissions = ("view",)
        verbose_name = "integration activity (daily)"
        verbose_name_plural = "integration activity (daily)"
        constraints = [
            models.UniqueConstraint(
                fields=["integration_id", "day"], nulls_distinct=False,
                name="monitoring_activity_key",
            )
        ]
        indexes = [models.Index(fields=["day"], name="monitoring_activity_day")]

    def __str__(self) -> str:
        return f"integration {self.integration_id} on {self.day}"


class RuleKey(models.TextChoices):
    IMPORT_HELD = "import_held", "Roster import held too long"
    ROSTER_COUNT = "roster_count", "Roster count far from its baseline"
    ACCESS_VOLUME = "access_volume", "Integration pulling unusual volumes"
    ACCESS_HOURS = "access_hours", "Integration active at unusual hours"
    TOKEN_FAILURES = "token_failures", "Repeated token failures for one client"
    PASSBACK_RATE = "passback_rate", "Grade passback rate changed sharply"
    EXCLUDED_ATTEMPTS = "excluded_attempts", "Releases that touched excluded pupils"
    APPROVAL_EXPIRY = "approval_expiry", "Approvals expiring or expired"
    AGREEMENT_EXPIRY = "agreement_expiry", "Agreements expiring or expired"
    REVIEW_EXPIRY = "review_expiry", "Security reviews expiring or expired"
    DELIVERY_LAG = "delivery_lag", "Destinations lagging or failing"


class MonitoringRule(models.Model):
    """One anomaly rule's switch and thresholds; every rule ships with sensible defaults.

    ``threshold`` is the rule's main figure (a ratio, a count or a number of days, as
    ``help`` says); ``window_hours`` is how far back it looks; ``min_volume`` keeps a rule
    quiet on too little data to judge.
    """

    key = models.CharField(max_length=40, choices=RuleKey.choices, unique=True)
    enabled = models.BooleanField(default=True)
    severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.WARNING)
    threshold = models.FloatField()
    window_hours = models.PositiveIntegerField(default=24)
    min_volume = models.PositiveIntegerField(default=0)
    help = models.TextField(blank=True, help_text="What the threshold means for this rule.")
    last_run_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_fired = models.PositiveIntegerField(default=0, editable=False)
    last_error = models.TextField(blank=True, editable=False)

    class Meta:
        ordering = ["key"]
        permissions = [("view_dashboard", "Can see the monitoring dashboard")]

    def __str__(self) -> str:
        return self.get_key_display()


# The keyring purpose (AAD) of a webhook secret; see apps/keys/keyring.py.
SECRET_PURPOSE = "monitoring.alert_channel.secret"  # noqa: S105 - a label, not a secret


class ChannelKind(models.TextChoices):
    EMAIL = "email", "Email"
    WEBHOOK = "webhook", "Signed webhook"


class AlertChannel(models.Model):
    """Where alerts are sent: an email list or a webhook signed with HMAC-SHA256.

    Each alert is sent to a channel once (``AlertNotification``); ``min_severity`` filters
    and ``max_per_run`` rate-limits a burst.
    """

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=10, choices=ChannelKind.choices)
    target = models.TextField(
        help_text="Email: addresses separated by commas. Webhook: the https URL to POST to."
    )
    # Webhook only: the shared secret the X-Interchange-Signature is made with, wrapped by
    # the master key (bound to ``secret_ref``) and read through the ``secret`` property.
    secret_wrapped = models.BinaryField(blank=True, default=b"", editable=False)
    secret_master_key_id = models.CharField(max_length=16, blank=True, editable=False)
    secret_ref = models.UUIDField(default=uuid.uuid4, editable=False)
    min_severity = models.CharField(
        max_length=10, choices=Severity.choices, default=Severity.WARNING
    )
    max_per_run = models.PositiveIntegerField(default=20)
    daily_digest = models.BooleanField(
        default=False,
        help_text="Also send the alerts below the minimum severity, once a day, as one digest.",
    )
    digest_sent_at = models.DateTimeField(null=True, blank=True, editable=False)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"

    @property
    def secret(self) -> str:
        if not self.secret_wrapped:
            return ""
        from apps.keys.keyring import keyring

        return keyring().unwrap(
            bytes(self.secret_wrapped), master_key_id=self.secret_master_key_id,
            purpose=SECRET_PURPOSE, object_id=str(self.secret_ref),
        ).decode()

    @secret.setter
    def secret(self, value: str) -> None:
        if not value:
            self.secret_wrapped, self.secret_master_key_id = b"", ""
            return
        from apps.keys.keyring import keyring

        wrapped = keyring().wrap(value.encode(), purpose=SECRET_PURPOSE,
                                 object_id=str(self.secret_ref))
        self.secret_wrapped, self.secret_master_key_id = wrapped.blob, wrapped.master_key_id


class AlertNotification(models.Model):
    """One attempt to send an alert through a channel; a failure is kept and retried."""

    channel = models.ForeignKey(AlertChannel, on_delete=models.CASCADE,
                                related_name="notifications")
    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="+")
    attempted_at = models.DateTimeField(auto_now_add=True)
    delivered = models.BooleanField(default=False)
    digest = models.BooleanField(default=False, help_text="Sent in a daily digest.")
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-attempted_at"]
        default_permissions = ("view",)
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "alert"], condition=models.Q(delivered=True),
                name="monitoring_notified_once",
            )
        ]

    def __str__(self) -> str:
        outcome = "ok" if self.delivered else "failed"
        return f"alert {self.alert_id} via {self.channel_id}: {outcome}"


class Dashboard(Alert):
    """The admin dashboard's entry (a proxy: the page lists open alerts and their levers)."""

    class Meta:
        proxy = True
        default_permissions = ()
        verbose_name = "dashboard"
        verbose_name_plural = "dashboard"
