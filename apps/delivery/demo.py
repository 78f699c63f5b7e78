"""Demo seeding for deliveries: each live CSV integration gets a signed-link destination and
a first bulk delivery, so the sandbox shows a run, a bundle and a working download link."""

from __future__ import annotations

from typing import Any

from apps.delivery import services
from apps.delivery.models import Destination, Transport
from apps.vendors.models import IntegrationKind


def demo_delivery_seed(*, integrations: dict[str, Any], actor: Any,
                       base_url: str = "") -> list[dict[str, Any]]:
    """Idempotent: an existing destination is reused and a fresh link issued each run."""
    out = []
    for integration in integrations.values():
        if integration.kind != IntegrationKind.ONEROSTER_CSV or not integration.is_live:
            continue
        destination = Destination.objects.filter(integration=integration).first()
        if destination is None:
            destination = services.destination_create(
                integration=integration, transport=Transport.HTTPS_PULL, actor=actor,
                link_ttl_hours=24 * 7, link_single_use=False)
        run, _ = services.delivery_run_enqueue(destination=destination, actor=actor)
        result = services.delivery_run_execute(run=run, base_url=base_url)
        run = result.run
        url = result.link_url
        if not url and run.state == "delivered":
            _, url = services.download_link_issue(destination=destination, actor=actor,
                                                  base_url=base_url)
        out.append({"integration": integration.name, "transport": destination.transport,
                    "state": run.state, "version": run.version_to,
                    "rows": (run.counts or {}).get("rows", {}), "download_url": url})
    return out
