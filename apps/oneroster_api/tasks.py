"""Celery tasks of the OneRoster provider (thin: they call services)."""

from __future__ import annotations

from celery import shared_task

from apps.oneroster_api.services import disclosures_flush


@shared_task(name="oneroster.disclosures_flush")
def disclosures_flush_task() -> int:
    return disclosures_flush()
