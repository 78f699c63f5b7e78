"""The alert record every app raises through ``apps.alerts.alerts``."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from simple_history.models import HistoricalRecords


class Severity(models.TextChoices):
    INFO = "info", "Info"
    WARNING = "warning", "Warning"
    CRITICAL = "critical", "Critical"


class AlertState(models.TextChoices):
    OPEN = "open", "Open"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    RESOLVED = "resolved", "Resolved"


class Alert(models.Model):
    """Something a person should look at.

    ``dedup_key`` is unique among alerts that are not resolved, so the same
    condition raised a thousand times is one alert with a count, and a condition
    that comes back after being resolved opens a fresh alert.
    """

    rule = models.CharField(max_length=100, db_index=True)
    severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.WARNING)
    subject = models.CharField(max_length=300)
    details = models.JSONField(default=dict, blank=True)
    evidence = models.JSONField(
        default=list, blank=True, help_text="Links to records that show the problem."
    )
    dedup_key = models.CharField(max_length=300)
    state = models.CharField(
        max_length=15, choices=AlertState.choices, default=AlertState.OPEN, db_index=True
    )
    occurrences = models.PositiveIntegerField(default=1)
    first_seen_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(auto_now_add=True)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="assigned_alerts",
    )
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution = models.TextField(blank=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["-last_seen_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["dedup_key"],
                condition=~models.Q(state="resolved"),
                name="alerts_one_live_alert_per_dedup_key",
            )
        ]
        indexes = [models.Index(fields=["state", "-last_seen_at"], name="alerts_state_seen")]

    def __str__(self) -> str:
        return f"[{self.severity}] {self.subject}"

    @property
    def is_live(self) -> bool:
        return self.state != AlertState.RESOLVED
