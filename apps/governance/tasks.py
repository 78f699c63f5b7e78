"""Celery tasks of the governance app: thin calls into the services."""

from __future__ import annotations

from celery import shared_task

from apps.governance.services import exclusions as exclusion_services


@shared_task(name="governance.exclusions_sweep")
def exclusions_sweep_task() -> dict[str, list[int]]:
    """Hourly: reminders before exclusions end, and expiries recorded in the audit log."""
    return exclusion_services.exclusions_sweep()


@shared_task(name="governance.scope_requests_sweep")
def scope_requests_sweep_task() -> dict[str, list[int]]:
    """Daily: flag approvals for recertification and tell the vendor before they expire;
    mark expired ones (their grant has already stopped at ``expires_at``)."""
    from apps.governance.services import requests as request_services

    return request_services.scope_requests_sweep()
