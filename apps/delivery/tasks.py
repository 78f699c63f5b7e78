"""Celery tasks: thin calls into the delivery services; the run record carries the state.

Runs are idempotent by construction (the run's key, the destination lock, the final-state
check), so a task redelivered after a worker died simply carries the run on.
"""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from apps.delivery import services, sources
from apps.delivery.models import Destination


def _retry_later(destination: Destination) -> None:
    from django.utils import timezone

    from portal.celery import app

    if app.conf.task_always_eager:
        return  # eager mode: the beat tick picks due retries up
    due = services.next_retry_at(destination)
    if due is not None:
        countdown = max((due - timezone.now()).total_seconds(), 1.0)
        destination_drain.apply_async(args=[destination.pk], countdown=countdown)


@shared_task(name="delivery.destination_drain")
def destination_drain(destination_id: int) -> list[str]:
    """Run a destination's due runs, in version order."""
    destination = Destination.objects.get(pk=destination_id)
    results = services.destination_drain(
        destination=destination, base_url=getattr(settings, "INTERCHANGE_BASE_URL", "")
    )
    _retry_later(destination)
    return [r.run.state for r in results]


@shared_task(name="delivery.outbox_relay")
def outbox_relay() -> int:
    """Applied roster versions -> one coalesced run per subscribed destination."""
    ids = services.outbox_relay()
    for destination_id in ids:
        destination_drain.delay(destination_id)
    return len(ids)


@shared_task(name="delivery.schedule_tick")
def schedule_tick() -> int:
    ids = services.destinations_schedule_due()
    for destination_id in ids:
        destination_drain.delay(destination_id)
    return len(ids)


@shared_task(name="delivery.bundles_purge")
def bundles_purge() -> int:
    return services.bundles_purge()


@shared_task(name="delivery.sources_poll")
def sources_poll() -> int:
    return sources.sis_sources_poll_due()
