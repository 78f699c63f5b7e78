"""Reads with rules: a person's disclosure history, from the ledger only."""

from __future__ import annotations

from typing import Any

from apps.audit.models import Channel, Disclosure, FieldClass, field_classes_from_mask
from apps.roster.models import User
from apps.vendors.models import Integration, Vendor

_CHANNELS = dict(Channel.choices)
_CLASSES = dict(FieldClass.choices)


def roster_person(query: str) -> str | None:
    """The roster sourcedId a DPO means: a sourcedId, or a school identifier / username."""
    query = (query or "").strip()
    if not query:
        return None
    if Disclosure.objects.filter(user_sourced_id=query).exists():
        return query
    row = (
        User.objects.filter(valid_to_version__isnull=True)
        .filter(sourced_id=query).values_list("sourced_id", flat=True).first()
        or User.objects.filter(valid_to_version__isnull=True, identifier=query)
        .values_list("sourced_id", flat=True).first()
        or User.objects.filter(valid_to_version__isnull=True, username=query)
        .values_list("sourced_id", flat=True).first()
    )
    return row


def disclosure_history(user_sourced_id: str) -> list[dict[str, Any]]:
    """Which vendors received this person's data, of which classes, through which channel,
    and when; newest first. Built from the disclosure ledger only, so it never shows whether
    or why the person was excluded."""
    rows = list(
        Disclosure.objects.filter(user_sourced_id=user_sourced_id)
        .order_by("-last_day", "vendor_id", "integration_id", "channel")
        .values("vendor_id", "integration_id", "channel", "field_classes", "first_day",
                "last_day")
    )
    vendors = dict(Vendor.objects.filter(pk__in={r["vendor_id"] for r in rows})
                   .values_list("pk", "name"))
    integrations = dict(Integration.objects.filter(pk__in={r["integration_id"] for r in rows})
                        .values_list("pk", "name"))
    return [
        {
            "vendor": vendors.get(r["vendor_id"], f"vendor {r['vendor_id']}"),
            "integration": integrations.get(r["integration_id"],
                                            f"integration {r['integration_id']}"),
            "channel": _CHANNELS.get(r["channel"], r["channel"]),
            "field_classes": [_CLASSES[c] for c in field_classes_from_mask(r["field_classes"])],
            "first_day": r["first_day"],
            "last_day": r["last_day"],
        }
        for r in rows
    ]
