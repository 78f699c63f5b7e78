"""LTI housekeeping tasks (thin: each calls one service)."""

from __future__ import annotations

from celery import shared_task

from apps.lti import services, tokens


@shared_task(name="lti.records_prune")
def records_prune() -> dict[str, int]:
    """Delete spent launch hints, Deep Linking requests and service tokens a day past their
    expiry (their access records and token requests keep the record)."""
    return {"launch_records": services.launch_hints_prune(),
            "service_tokens": tokens.service_tokens_prune()}
