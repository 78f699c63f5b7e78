"""Models of the keys app: per-file data keys and signing keys, both wrapped by the keyring."""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords


class DataKey(models.Model):
    """The 256-bit key of one encrypted file, stored only wrapped by the master key.

    Destroying it (``data_key_destroy``) empties ``wrapped_key``: the file's
    ciphertext becomes unreadable wherever copies of it live (crypto-shredding).
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    purpose = models.CharField(max_length=64, help_text="What the file is, e.g. roster.staging")
    wrapped_key = models.BinaryField(editable=False)
    master_key_id = models.CharField(max_length=16, db_index=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    destroyed_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["purpose", "created_at"], name="keys_datakey_purpose_idx")]

    def __str__(self) -> str:
        return f"{self.purpose} {self.id}"

    @property
    def is_destroyed(self) -> bool:
        return self.destroyed_at is not None


class SigningKey(models.Model):
    """An RSA signing key for one purpose, moving next -> active -> retired (or revoked).

    ``kid`` is the RFC 7638 thumbprint of the public key, so anyone holding the
    public JWK can recompute it. The private key is stored only wrapped.
    """

    class Purpose(models.TextChoices):
        LTI = "lti", "LTI 1.3 platform"
        EVIDENCE = "evidence", "Evidence (control packs, exports)"

    class State(models.TextChoices):
        NEXT = "next", "Next (published, not yet signing)"
        ACTIVE = "active", "Active (signing)"
        RETIRED = "retired", "Retired (verifies old signatures)"
        REVOKED = "revoked", "Revoked (must not be trusted)"

    kid = models.CharField(max_length=64, unique=True, editable=False)
    purpose = models.CharField(max_length=16, choices=Purpose.choices)
    state = models.CharField(max_length=16, choices=State.choices, default=State.NEXT)
    algorithm = models.CharField(max_length=16, default="RS256", editable=False)
    key_size = models.PositiveIntegerField(editable=False)
    public_key_pem = models.TextField(editable=False)
    wrapped_private_key = models.BinaryField(editable=False)
    master_key_id = models.CharField(max_length=16, db_index=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    activated_at = models.DateTimeField(null=True, blank=True)
    retired_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_reason = models.TextField(blank=True)

    # Wrapped private material stays out of history: a history row wrapped under an
    # old master key would outlive that key's rotation.
    history = HistoricalRecords(excluded_fields=["wrapped_private_key", "master_key_id"])

    class Meta:
        ordering = ["purpose", "-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["purpose"], condition=Q(state="active"), name="keys_one_active_per_purpose"
            ),
            models.UniqueConstraint(
                fields=["purpose"], condition=Q(state="next"), name="keys_one_next_per_purpose"
            ),
            models.CheckConstraint(
                condition=Q(key_size__gte=2048), name="keys_signingkey_rsa_2048_or_more"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.purpose} {self.state} {self.kid[:12]}"
