"""The LTI 1.3 platform's records: tool registrations and their deployments, resource links,
and the single-use hints and deep-linking requests that bind a launch to one person.

What a tool may *receive* is not stored here: it is read on every launch from the release
policy (``apps.governance.release.release_for``), so a suspension or a withdrawn approval
acts on the very next launch.
"""

from __future__ import annotations

import secrets
import uuid

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

# Opaque identifiers we hand out: long enough never to be guessed or to collide.
CLIENT_ID_BYTES = 18
DEPLOYMENT_ID_BYTES = 12


def new_client_id() -> str:
    return secrets.token_urlsafe(CLIENT_ID_BYTES)


def new_deployment_id() -> str:
    return secrets.token_urlsafe(DEPLOYMENT_ID_BYTES)


def _urls() -> ArrayField:
    return ArrayField(models.URLField(max_length=2000), default=list)


class ToolRegistration(models.Model):
    """An LTI tool as the platform knows it; it belongs to one ``lti_tool`` integration.

    Keys: either a JWKS URL (fetched with a timeout, cached, refetched once on an unknown
    ``kid``) or one pasted public key, whose ``kid`` is its RFC 7638 thumbprint.
    """

    integration = models.OneToOneField(
        "vendors.Integration", on_delete=models.PROTECT, related_name="lti_registration"
    )
    client_id = models.CharField(max_length=64, unique=True, default=new_client_id,
                                 editable=False)
    login_initiation_url = models.URLField(max_length=2000)
    redirect_uris = _urls()
    target_link_uris = _urls()
    jwks_url = models.URLField(max_length=2000, blank=True)
    public_key_pem = models.TextField(blank=True)
    public_key_kid = models.CharField(max_length=64, blank=True, editable=False)
    custom = models.JSONField(default=dict, blank=True,
                              help_text="Custom parameters sent with every launch (strings).")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords()

    class Meta:
        verbose_name = "LTI tool registration"
        constraints = [
            models.CheckConstraint(
                condition=(Q(jwks_url="") & ~Q(public_key_pem=""))
                | (~Q(jwks_url="") & Q(public_key_pem="")),
                name="lti_registration_one_key_source",
            ),
            models.CheckConstraint(
                condition=Q(redirect_uris__len__gt=0) & Q(target_link_uris__len__gt=0),
                name="lti_registration_has_uris",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.integration} ({self.client_id})"

    @property
    def default_target_link_uri(self) -> str:
        return self.target_link_uris[0]


class Deployment(models.Model):
    """One placement of a tool; a registration may have several (one per school, say).

    ``org_sourced_id`` empty: the deployment serves every org the tool is approved for;
    otherwise launches from classes of that org use it.
    """

    registration = models.ForeignKey(
        ToolRegistration, on_delete=models.CASCADE, related_name="deployments"
    )
    deployment_id = models.CharField(max_length=64, unique=True, default=new_deployment_id,
                                     editable=False)
    org_sourced_id = models.CharField(db_collation="C", max_length=255, blank=True)
    label = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["registration", "id"]
        constraints = [
            models.UniqueConstraint(fields=["registration", "org_sourced_id"],
                                    name="lti_deployment_one_per_org"),
        ]

    def __str__(self) -> str:
        return self.label or self.deployment_id


class ResourceLinkOrigin(models.TextChoices):
    DEFAULT = "default", "The tool's default link for a class"
    DEEP_LINK = "deep_link", "Chosen through Deep Linking"


class ResourceLink(models.Model):
    """A placement of a tool's content in a class; its id is the launch's ``resource_link.id``."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    registration = models.ForeignKey(
        ToolRegistration, on_delete=models.CASCADE, related_name="resource_links"
    )
    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="+")
    class_sourced_id = models.CharField(db_collation="C", max_length=255)
    origin = models.CharField(max_length=20, choices=ResourceLinkOrigin.choices)
    title = models.CharField(max_length=255, blank=True)
    text = models.TextField(blank=True)
    url = models.URLField(max_length=2000, blank=True,
                          help_text="Target link URI; empty: the tool's default.")
    custom = models.JSONField(default=dict, blank=True)
    line_item = models.JSONField(null=True, blank=True,
                                 help_text="Line item the tool asked for (kept for AGS).")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                   on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["class_sourced_id", "created_at"]
        indexes = [models.Index(fields=["class_sourced_id", "registration"],
                                name="lti_link_class_reg")]
        constraints = [
            models.UniqueConstraint(
                fields=["registration", "class_sourced_id"], condition=Q(origin="default"),
                name="lti_link_one_default_per_class",
            ),
        ]

    def __str__(self) -> str:
        return self.title or str(self.id)


class MessageType(models.TextChoices):
    RESOURCE_LINK = "LtiResourceLinkRequest", "Resource link launch"
    DEEP_LINKING = "LtiDeepLinkingRequest", "Deep Linking request"


class LaunchHint(models.Model):
    """The ``lti_message_hint`` of one launch: single use, short-lived, bound to the person,
    the tool, the deployment, the class and the message. Only its hash is stored, so a
    database reader cannot replay a launch in flight."""

    hint_hash = models.CharField(max_length=64, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    registration = models.ForeignKey(ToolRegistration, on_delete=models.CASCADE, related_name="+")
    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="+")
    class_sourced_id = models.CharField(db_collation="C", max_length=255)
    message_type = models.CharField(max_length=40, choices=MessageType.choices)
    resource_link = models.ForeignKey(ResourceLink, null=True, blank=True,
                                      on_delete=models.CASCADE, related_name="+")
    target_link_uri = models.URLField(max_length=2000)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["expires_at"], name="lti_hint_expiry")]

    def __str__(self) -> str:
        return f"{self.message_type} hint {self.pk}"


class DeepLinkingRequest(models.Model):
    """A Deep Linking request in flight: its ``data`` (only the hash is kept) comes back in
    the tool's response and must match an unused request of the same tool and deployment."""

    data_hash = models.CharField(max_length=64, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    registration = models.ForeignKey(ToolRegistration, on_delete=models.CASCADE, related_name="+")
    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="+")
    class_sourced_id = models.CharField(db_collation="C", max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"Deep Linking request {self.pk}"


# --- LTI Advantage services ---------------------------------------------------------------------


class LtiContext(models.Model):
    """A class as one deployment of a tool sees it; its id is what service URLs carry.

    A random UUID rather than the class's sourcedId: the URL never names the school's
    identifier, and it stays valid when a client lowercases it (pylti1p3 lowercases the
    ``Link`` header it pages with).
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    registration = models.ForeignKey(ToolRegistration, on_delete=models.CASCADE,
                                     related_name="contexts")
    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="+")
    class_sourced_id = models.CharField(db_collation="C", max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "LTI context"
        constraints = [
            models.UniqueConstraint(fields=["deployment", "class_sourced_id"],
                                    name="lti_context_one_per_class"),
        ]

    def __str__(self) -> str:
        return f"{self.class_sourced_id} ({self.deployment})"


class ServiceToken(models.Model):
    """An access token ``/lti/token`` issued: opaque to the tool, only its hash stored here.

    Bound to the tool, the scopes granted and (when the tool named one, or has only one) a
    deployment. Checked on every service call, together with the release, so an expiry, a
    revocation, a suspension or a withdrawn approval acts on the next call.
    """

    token_hash = models.CharField(max_length=64, unique=True)
    registration = models.ForeignKey(ToolRegistration, on_delete=models.CASCADE,
                                     related_name="service_tokens")
    deployment = models.ForeignKey(Deployment, null=True, blank=True, on_delete=models.CASCADE,
                                   related_name="+",
                                   help_text="Empty: any deployment of the tool.")
    scopes = ArrayField(models.CharField(max_length=255), default=list)
    issued_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["expires_at"], name="lti_token_expiry")]

    def __str__(self) -> str:
        return f"token {self.pk} of {self.registration_id}"


class TokenOutcome(models.TextChoices):
    GRANTED = "granted", "Granted"
    REFUSED = "refused", "Refused"


class TokenRequest(models.Model):
    """Every request to ``/lti/token``, granted or refused: who asked, for what, and why a
    refusal was refused (our reason, not the assertion, which is never stored)."""

    at = models.DateTimeField()
    client_id = models.CharField(max_length=100, blank=True)
    registration = models.ForeignKey(ToolRegistration, null=True, blank=True,
                                     on_delete=models.SET_NULL, related_name="+")
    outcome = models.CharField(max_length=10, choices=TokenOutcome.choices)
    error = models.CharField(max_length=40, blank=True)
    reason = models.CharField(max_length=200, blank=True)
    scopes_requested = ArrayField(models.CharField(max_length=255), default=list)
    scopes_granted = ArrayField(models.CharField(max_length=255), default=list)
    token = models.ForeignKey(ServiceToken, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+")

    class Meta:
        ordering = ["-at"]
        indexes = [models.Index(fields=["registration", "at"], name="lti_tokenreq_reg_at")]

    def __str__(self) -> str:
        return f"{self.outcome} {self.client_id} at {self.at:%Y-%m-%d %H:%M:%S}"


class AgsLineItem(models.Model):
    """An AGS line item: the tool's column in the gradebook of one context.

    The gradebook row itself is a canonical ``LineItem`` owned by the tool's integration
    (``line_item_sourced_id``), written through ``apps.roster.gradebook``; this row keeps
    what AGS needs and OneRoster has no column for, and binds the item to its context (and
    so to one tool, deployment and class): every AGS call looks items up through it.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    context = models.ForeignKey(LtiContext, on_delete=models.CASCADE, related_name="line_items")
    resource_link = models.ForeignKey(ResourceLink, null=True, blank=True,
                                      on_delete=models.SET_NULL, related_name="line_items")
    label = models.CharField(max_length=255)
    score_maximum = models.DecimalField(max_digits=20, decimal_places=6)
    resource_id = models.CharField(max_length=255, blank=True)
    tag = models.CharField(max_length=255, blank=True)
    start_date_time = models.DateTimeField(null=True, blank=True)
    end_date_time = models.DateTimeField(null=True, blank=True)
    line_item_sourced_id = models.CharField(db_collation="C", max_length=255, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "AGS line item"
        ordering = ["context", "created_at", "id"]

    def __str__(self) -> str:
        return self.label


class AgsScore(models.Model):
    """The last score accepted for a person on a line item, with the tool's timestamp: an
    older score never overwrites a newer one (one guarded upsert decides)."""

    line_item = models.ForeignKey(AgsLineItem, on_delete=models.CASCADE, related_name="scores")
    user_sourced_id = models.CharField(db_collation="C", max_length=255)
    result_sourced_id = models.CharField(db_collation="C", max_length=255)
    timestamp = models.DateTimeField()
    score_given = models.DecimalField(max_digits=20, decimal_places=6, null=True, blank=True)
    score_maximum = models.DecimalField(max_digits=20, decimal_places=6, null=True, blank=True)
    activity_progress = models.CharField(max_length=20)
    grading_progress = models.CharField(max_length=20)
    comment = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "AGS score"
        constraints = [
            models.UniqueConstraint(fields=["line_item", "user_sourced_id"],
                                    name="lti_score_one_per_person"),
        ]

    def __str__(self) -> str:
        return f"score on {self.line_item_id}"
