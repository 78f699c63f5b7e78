"""Reads of deliveries that carry rules: lag, last state, history."""

from __future__ import annotations

from django.db.models import OuterRef, QuerySet, Subquery

from apps.delivery.models import DeliveryRun, Destination


def destinations_overview() -> QuerySet:
    """Destinations with their latest run's state and id, for the admin list (one query)."""
    latest = DeliveryRun.objects.filter(destination=OuterRef("pk")).order_by("-created_at")
    return Destination.objects.select_related("integration__vendor").annotate(
        last_run_state=Subquery(latest.values("state")[:1]),
        last_run_id=Subquery(latest.values("pk")[:1]),
    )


def destination_lag(destination: Destination, latest: int) -> int | None:
    """How many roster versions the destination is behind (None: never delivered)."""
    if destination.last_delivered_version is None:
        return None
    return max(latest - destination.last_delivered_version, 0)
