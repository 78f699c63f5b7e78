"""Celery tasks of the audit app: thin calls into the services."""

from __future__ import annotations

from celery import shared_task

from apps.audit import audit


@shared_task(name="audit.flush_pending")
def flush_pending_task() -> int:
    """Chain events whose post-commit flush did not run (a crash between commit and flush)."""
    return audit.flush_pending()
