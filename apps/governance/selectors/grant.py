"""The effective grant of an integration: the union of its live approved scope requests.

This is the only place that turns approvals into access; the release policy
(``apps.governance.release.release_for``) builds on it, and every spoke builds on that.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.utils import timezone


@dataclass(frozen=True)
class Grant:
    scopes: frozenset[str] = frozenset()  # OneRoster scope URIs, LTI AGS/NRPS scope URIs
    services: frozenset[str] = frozenset()  # "oneroster.rostering", "lti.nrps", ...
    field_classes: frozenset[str] = frozenset()  # FieldClass values
    fields: frozenset[str] = frozenset()  # single fields, "users.email"
    claims: frozenset[str] = frozenset()  # LTI personal claims: name, given_name, ...
    org_sourced_ids: frozenset[str] = frozenset()  # chosen orgs (descendants implied)
    approvals: tuple[int, ...] = ()  # ids of the live approved ScopeRequests

    @property
    def is_empty(self) -> bool:
        return not self.approvals


EMPTY_GRANT = Grant()

_SET_FIELDS = ("scopes", "services", "field_classes", "fields", "claims", "org_sourced_ids")


def effective_grant(integration, *, at: dt.datetime | None = None) -> Grant:  # type: ignore[no-untyped-def]
    """What ``integration`` is approved for at ``at`` (now by default): one query.

    A request is live from its approval until the first of its expiry and its withdrawal,
    so the answer for a past instant is the same whatever happened since. Status levers
    (a suspended integration or vendor) are not applied here; ``release_for`` applies them.
    """
    from apps.governance.models import ScopeRequest

    at = at or timezone.now()
    rows = list(
        ScopeRequest.objects.live(at)
        .filter(integration_id=integration.pk)
        .order_by("id")
        .values_list("id", *_SET_FIELDS)
    )
    if not rows:
        return EMPTY_GRANT
    unions: dict[str, set[str]] = {name: set() for name in _SET_FIELDS}
    for row in rows:
        for name, values in zip(_SET_FIELDS, row[1:], strict=True):
            unions[name].update(values or ())
    return Grant(
        **{name: frozenset(values) for name, values in unions.items()},
        approvals=tuple(row[0] for row in rows),
    )
