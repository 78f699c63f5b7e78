"""Celery tasks of the audit app: thin calls into the services."""

from __future__ import annotations

from celery import shared_task

from apps.audit import audit, services


@shared_task(name="audit.flush_pending")
def flush_pending_task() -> int:
    """Chain events whose post-commit flush did not run (a crash between commit and flush)."""
    return audit.flush_pending()


@shared_task(name="audit.prune_access_log")
def prune_access_log_task() -> int:
    """Keep the recent access log bounded (INTERCHANGE_ACCESS_LOG_RETENTION_DAYS)."""
    return services.access_log_prune()
