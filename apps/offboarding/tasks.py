"""Celery tasks of the offboarding app: thin calls into the services."""

from __future__ import annotations

from celery import shared_task

from apps.offboarding import services


@shared_task(name="offboarding.contracts_ended")
def contracts_ended_task() -> list[str]:
    """Daily: open an offboarding (and alert) for every vendor whose contract has ended."""
    return services.contracts_ended_open()


@shared_task(name="offboarding.deletion_requests_chase")
def deletion_requests_chase_task() -> list[str]:
    """Daily: chase deletion confirmations that are overdue."""
    return services.deletion_requests_chase()


@shared_task(name="offboarding.access_after_close_check")
def access_after_close_check_task() -> int:
    """Every few minutes: alert any attempt by an offboarded integration."""
    return len(services.access_after_close_check())


@shared_task(name="offboarding.incidents_clock_check")
def incidents_clock_check_task() -> list[int]:
    """Every quarter hour: alert incidents whose notification deadline nears or has passed."""
    from apps.offboarding.incidents import incidents_clock_check

    return incidents_clock_check()


@shared_task(name="offboarding.control_pack_build")
def control_pack_build_task(pack_id: str) -> bool:
    """Build a queued control pack (asked for in the admin)."""
    from apps.offboarding.packs import control_pack_complete

    return control_pack_complete(pack_id) is not None
