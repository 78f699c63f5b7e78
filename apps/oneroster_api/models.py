"""Credentials of OneRoster REST integrations and the record of every token request.

One integration has one OAuth 2 client (a django-oauth-toolkit ``Application``), never a
shared one. Its secrets live here rather than in ``Application.client_secret`` because a
rotation needs two live secrets for a while (the vendor deploys the new one, then the old
one lapses). Secrets are 256-bit random values, stored as SHA-256 digests: a slow password
hash protects guessable passwords and adds nothing for a random key, while it would make
every token request cost a deliberate half second.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q
from django.utils import timezone


class OneRosterClient(models.Model):
    """The OAuth 2 client of one ``oneroster_rest`` integration."""

    integration = models.OneToOneField(
        "vendors.Integration", on_delete=models.PROTECT, related_name="oneroster_client"
    )
    application = models.OneToOneField(
        "oauth2_provider.Application", on_delete=models.PROTECT,
        related_name="oneroster_client",
    )
    rate_limit_per_minute = models.PositiveIntegerField(
        null=True, blank=True,
        help_text="Requests a minute for this client; empty: the default "
                  "(INTERCHANGE_ONEROSTER_RATE_LIMIT_PER_MINUTE).",
    )
    issued_at = models.DateTimeField(auto_now_add=True)
    issued_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )
    revoked_reason = models.TextField(blank=True)

    class Meta:
        verbose_name = "OneRoster client"
        # Issuing, rotating and revoking show or end a live secret: governance staff only,
        # while engineers and auditors may still read the client records.
        permissions = [
            ("manage_credentials", "Can issue, rotate and revoke OneRoster credentials"),
        ]

    def __str__(self) -> str:
        return f"OneRoster client of {self.integration_id}"

    @property
    def client_id(self) -> str:
        return self.application.client_id


class ClientSecretQuerySet(models.QuerySet):
    def live(self, at=None):  # type: ignore[no-untyped-def]
        at = at or timezone.now()
        return self.filter(revoked_at__isnull=True).filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=at)
        )


class ClientSecret(models.Model):
    """One secret of a client. Live until revoked or, after a rotation, until its overlap
    ends; at most two are live at once (the rotation service guarantees it)."""

    client = models.ForeignKey(OneRosterClient, on_delete=models.CASCADE, related_name="secrets")
    digest = models.CharField(max_length=64, unique=True)
    # The first characters, so staff can tell which secret a vendor holds without the secret.
    hint = models.CharField(max_length=8)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ClientSecretQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.hint}… ({self.client})"


class TokenOutcome(models.TextChoices):
    GRANTED = "granted"
    REFUSED = "refused"


class TokenRequestRecord(models.Model):
    """Every token request, granted or refused: client, environment, scopes."""

    at = models.DateTimeField(default=timezone.now, db_index=True)
    client_id = models.CharField(max_length=100, blank=True)
    integration = models.ForeignKey(
        "vendors.Integration", null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )
    environment = models.CharField(max_length=20)
    outcome = models.CharField(max_length=10, choices=TokenOutcome.choices)
    error = models.CharField(max_length=50, blank=True)
    requested_scopes = models.TextField(blank=True)
    granted_scopes = models.TextField(blank=True)
    remote_addr = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["integration", "at"], name="oneroster_tokenreq_integ")]

    def __str__(self) -> str:
        return f"{self.outcome} {self.client_id} {self.at:%Y-%m-%d %H:%M}"


class PendingDisclosure(models.Model):
    """People one request disclosed, waiting to be folded into the disclosure ledger.

    Writing the ledger (a per-person upsert) costs tens of milliseconds for a page of a
    thousand people; appending this one row costs one. ``disclosures_flush`` folds the
    pending rows into the ledger every few seconds (Celery beat) in the same database, so
    nothing is lost if a worker stops: the rows wait for the next flush.
    """

    vendor_id = models.BigIntegerField()
    integration_id = models.BigIntegerField()
    field_classes = ArrayField(models.CharField(max_length=30))
    day = models.DateField()
    user_sourced_ids = ArrayField(models.TextField())
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{len(self.user_sourced_ids)} people to integration {self.integration_id}"


class PageRun(models.Model):
    """The stored sourcedIds of one run of ``render.ANCHOR_STEP`` records of a list whose
    order is computed per record: a pseudonymised release orders people by pseudonym.

    Anchors (the sourcedId every STEP records) let a deep page of a stored order start with
    an index range scan. A pseudonym has no index: without these runs every page computed
    the pseudonym of every person in the list to find its hundred (seconds per page for a
    large district). They are computed with the list's total, once per list, release and
    roster version (``render.page_stats``), and purged when a newer roster version's are
    computed or after the same time as the cached total. A cache: the table is unlogged (a
    lost run is computed again).
    """

    key = models.CharField(max_length=64)
    number = models.PositiveIntegerField()
    roster_version = models.PositiveIntegerField()
    sourced_ids = ArrayField(models.TextField(db_collation="C"))
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["key", "number"],
                                               name="oneroster_page_run_key_number")]

    def __str__(self) -> str:
        return f"run {self.number} of {self.key[:12]}"
