"""Scope requests and the sign-offs that approve or deny them.

An integration never holds access directly: it holds approved requests, each for a
bounded time, and its effective grant is the union of those that are live
(``apps.governance.selectors.grant.effective_grant``). Rules live in the services
(``apps.governance.services.requests``); these models are the record.

Time is explicit so that "what could this integration see on date D" is a query:
an approved request is live from ``approved_at`` until the first of ``expires_at`` and
``withdrawn_at``.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from apps.audit.models import FieldClass

__all__ = [
    "DEFAULT_DURATION_DAYS",
    "MAX_DURATION_DAYS",
    "ScopeApproval",
    "ScopeDecision",
    "ScopeRequest",
    "ScopeRequestStatus",
]

# Twelve months unless the request asks for less; never more than three years.
DEFAULT_DURATION_DAYS = 365
MAX_DURATION_DAYS = 3 * 365


def _texts(help_text: str = "") -> ArrayField:
    return ArrayField(models.CharField(max_length=255), default=list, blank=True,
                      help_text=help_text)


class ScopeRequestStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    DENIED = "denied", "Denied"
    EXPIRED = "expired", "Expired"
    WITHDRAWN = "withdrawn", "Withdrawn"


class ScopeRequestQuerySet(models.QuerySet):
    def live(self, at):
        """Approved requests in force at ``at`` (the grant is their union)."""
        return self.filter(
            approved_at__isnull=False,
            approved_at__lte=at,
            expires_at__gt=at,
        ).filter(Q(withdrawn_at__isnull=True) | Q(withdrawn_at__gt=at))

    def pending(self):
        return self.filter(status=ScopeRequestStatus.PENDING)


class ScopeRequest(models.Model):
    """What an integration asks to receive, why, for how long, and what was decided."""

    integration = models.ForeignKey(
        "vendors.Integration", on_delete=models.PROTECT, related_name="scope_requests"
    )
    status = models.CharField(
        max_length=20, choices=ScopeRequestStatus.choices, default=ScopeRequestStatus.PENDING
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    requested_at = models.DateTimeField(auto_now_add=True)

    # What is asked for.
    services = _texts('e.g. "oneroster.rostering", "lti.nrps"')
    scopes = _texts("OneRoster scope URIs, LTI AGS/NRPS scope URIs")
    field_classes = ArrayField(
        models.CharField(max_length=30, choices=FieldClass.choices), default=list, blank=True
    )
    fields = _texts('Single fields beyond the classes, "entity.column" ("users.email")')
    claims = _texts("LTI personal claims: name, given_name, family_name, email")
    org_sourced_ids = _texts("Orgs in scope (their descendants are implied)")

    justification = models.TextField()
    duration_days = models.PositiveIntegerField(default=DEFAULT_DURATION_DAYS)
    dpia_reference = models.CharField("DPIA reference", max_length=100, blank=True)
    dpia_not_needed_reason = models.TextField(
        "why no DPIA is needed", blank=True,
        help_text="Required for sensitive data when there is no DPIA reference.",
    )
    # Fixed when the request is made (and raised, never lowered, at each decision if the
    # classification has changed since): 1, or 2 for sensitive data.
    approvals_required = models.PositiveSmallIntegerField(default=1)
    renews = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="renewals",
        help_text="The approval this request recertifies.",
    )

    # What was decided.
    decided_at = models.DateTimeField(null=True, blank=True)
    approved_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    withdrawn_at = models.DateTimeField(null=True, blank=True)
    withdrawn_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )
    withdrawn_reason = models.TextField(blank=True)
    # Recertification: flagged, and the vendor told, some weeks before expiry.
    recertification_flagged_at = models.DateTimeField(null=True, blank=True)
    expiry_notice_sent_at = models.DateTimeField(null=True, blank=True)

    objects = ScopeRequestQuerySet.as_manager()
    history = HistoricalRecords()

    class Meta:
        ordering = ["-requested_at", "-id"]
        permissions = [("approve_scoperequest", "Can approve or deny scope requests")]
        indexes = [
            models.Index(fields=["integration", "status"], name="gov_scopereq_integ_status"),
            models.Index(fields=["status", "expires_at"], name="gov_scopereq_status_expiry"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(duration_days__gte=1) & Q(duration_days__lte=MAX_DURATION_DAYS),
                name="gov_scopereq_duration",
            ),
            models.CheckConstraint(
                condition=Q(approved_at__isnull=True) | Q(expires_at__isnull=False),
                name="gov_scopereq_approved_expires",
            ),
        ]

    def __str__(self) -> str:
        return f"Request #{self.pk} for {self.integration}"

    @property
    def is_sensitive(self) -> bool:
        return self.approvals_required > 1


class ScopeDecision(models.TextChoices):
    APPROVE = "approve", "Approve"
    DENY = "deny", "Deny"


class ScopeApproval(models.Model):
    """One person's decision on one request. A person decides a request at most once (the
    unique constraint), so the same approver can never be counted twice."""

    request = models.ForeignKey(ScopeRequest, on_delete=models.PROTECT, related_name="decisions")
    approver = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                                 related_name="+")
    decision = models.CharField(max_length=10, choices=ScopeDecision.choices)
    reason = models.TextField()
    decided_at = models.DateTimeField(auto_now_add=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["decided_at", "id"]
        verbose_name = "scope decision"
        constraints = [
            models.UniqueConstraint(
                fields=["request", "approver"], name="gov_scopeapproval_one_per_person"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_decision_display()} by {self.approver} on #{self.request_id}"
