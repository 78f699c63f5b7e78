"""Celery tasks: thin calls into the roster services; the run record carries the state."""

from __future__ import annotations

from celery import shared_task

from apps.roster import services
from apps.roster.models import ImportRun, ImportState


@shared_task(name="roster.import_run")
def import_run(run_id: int, approved: bool = False) -> str:
    """Process a received (or approved held) run. Idempotent: a finished run is left alone."""
    run = ImportRun.objects.select_related("source", "rule_set").get(pk=run_id)
    if run.state not in (ImportState.RECEIVED, ImportState.HELD):
        return run.state
    return services.import_run_process(run=run, approved=approved).state


@shared_task(name="roster.drop_folder_scan")
def drop_folder_scan() -> int:
    return len(services.drop_folder_scan())


@shared_task(name="roster.staged_files_purge")
def staged_files_purge() -> int:
    return services.staged_files_purge()
