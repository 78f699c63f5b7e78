"""Operations tasks. Thin, like every task: they call a function and log."""

from __future__ import annotations

import logging

from celery import shared_task

from portal.health import worker_heartbeat_record

logger = logging.getLogger(__name__)


@shared_task(name="ops.heartbeat", bind=True, ignore_result=True)
def heartbeat(self) -> str:  # type: ignore[no-untyped-def]
    """Scheduled by beat every INTERCHANGE_WORKER_HEARTBEAT_SECONDS; /readyz reports its age."""
    at = worker_heartbeat_record()
    logger.info("worker heartbeat", extra={"worker": self.request.hostname})
    return at.isoformat()
