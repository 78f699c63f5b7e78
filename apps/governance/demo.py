"""Demo exclusions for the sandbox (wired into apps/demo/seed.py by the lead).

Two pupils from the current roster: one excluded from the plain (not pseudonymised)
OneRoster REST integration, one from all vendors, both through the real service (so they
are audited like any officer's decision). Re-running reuses exclusions still in force.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.governance.models import Exclusion, ExclusionReason, ExclusionScope
from apps.governance.services.exclusions import exclusion_create
from apps.roster.models import Role

DEMO_EXCLUSION_DAYS = 90
ERROR_NO_PLAIN_REST = "No plain (not pseudonymised) oneroster_rest integration to exclude from."
ERROR_NO_PUPILS = "The roster has fewer than two current students; import the demo roster first."


def _plain_rest(integrations: dict[str, Any]) -> Any:
    for integration in integrations.values():
        if integration.kind == "oneroster_rest" and not integration.pseudonymised:
            return integration
    raise ValueError(ERROR_NO_PLAIN_REST)


def _two_pupils() -> list[str]:
    pupils = list(
        Role.objects.filter(valid_to_version__isnull=True, role="student")
        .order_by("user_sourced_id").values_list("user_sourced_id", flat=True).distinct()[:2]
    )
    if len(pupils) < 2:
        raise ValueError(ERROR_NO_PUPILS)
    return pupils


@transaction.atomic
def demo_exclusions_seed(*, integrations: dict[str, Any], officer: Any) -> list[dict]:
    """Exclude one pupil from the plain REST integration and another from all vendors.

    Returns ``[{"user_sourced_id", "integration": name or None, "ends": ISO date}]``.
    """
    plain = _plain_rest(integrations)
    first, second = _two_pupils()
    ends_at = timezone.now() + dt.timedelta(days=DEMO_EXCLUSION_DAYS)
    wanted = (
        (first, ExclusionScope.INTEGRATION, plain, ExclusionReason.PARENTAL_OBJECTION,
         "Demo: parent asked that this vendor not receive their child's data."),
        (second, ExclusionScope.ALL_VENDORS, None, ExclusionReason.CHILD_PROTECTION,
         "Demo: protected child; no vendor may receive their data until review."),
    )
    out = []
    for user_sourced_id, scope, integration, reason, note in wanted:
        existing = (
            Exclusion.objects.active().filter(
                user_sourced_id=user_sourced_id, scope=scope,
                integration=integration if integration is not None else None,
            ).order_by("-ends_at").first()
        )
        exclusion = existing or exclusion_create(
            actor=officer, user_sourced_id=user_sourced_id, scope=scope,
            integration=integration, reason_code=reason, note=note, ends_at=ends_at,
        )
        out.append({
            "user_sourced_id": exclusion.user_sourced_id,
            "integration": integration.name if integration is not None else None,
            "ends": timezone.localtime(exclusion.ends_at).date().isoformat(),
        })
    return out
