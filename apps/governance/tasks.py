"""Celery tasks of the governance app: thin calls into the services."""

from __future__ import annotations

from celery import shared_task

from apps.governance.services import exclusions as exclusion_services


@shared_task(name="governance.exclusions_sweep")
def exclusions_sweep_task() -> dict[str, list[int]]:
    """Hourly: reminders before exclusions end, and expiries recorded in the audit log."""
    return exclusion_services.exclusions_sweep()
