"""Per-vendor pseudonym keys and the hub's reverse map (see apps/governance/pseudonyms.py).

The key itself is a ``keys.DataKey`` row: wrapped by the master key, and therefore
re-wrapped by a master key rotation like every other data key, so pseudonyms survive a
rotation unchanged. Destroying it (crypto-shredding at offboarding) makes the vendor's
pseudonyms impossible to compute or link again.
"""

from __future__ import annotations

from django.db import models

__all__ = ["PseudonymMap", "VendorPseudonymKey"]


class VendorPseudonymKey(models.Model):
    """The HMAC key a vendor's pseudonyms are computed with: one per vendor, so that a
    vendor's REST roster, CSV bundles and LTI launches agree, and two vendors cannot join
    their data on our identifiers."""

    vendor = models.OneToOneField(
        "vendors.Vendor", on_delete=models.PROTECT, related_name="pseudonym_key"
    )
    data_key = models.OneToOneField("keys.DataKey", on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    # The roster version the reverse map was last filled at: a lookup that misses refills it
    # only when the roster has moved on since, so unknown pseudonyms (a vendor's typo, or a
    # probe) never cost a table scan each.
    mapped_version = models.PositiveIntegerField(null=True, blank=True)

    def __str__(self) -> str:
        return f"pseudonym key of {self.vendor}"


class PseudonymMap(models.Model):
    """pseudonym -> sourcedId for one vendor, so the hub can map a vendor's answer back
    (an AGS score, a support query). Filled in bulk, never shown to the vendor."""

    vendor = models.ForeignKey("vendors.Vendor", on_delete=models.CASCADE, related_name="+")
    pseudonym = models.CharField(max_length=64)
    sourced_id = models.CharField(db_collation="C", max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["vendor", "pseudonym"], name="gov_pseudonym_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.pseudonym} ({self.vendor_id})"
