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


def effective_grant(  # type: ignore[no-untyped-def]
    integration, *, at: dt.datetime | None = None, excluding: tuple[int, ...] = ()
) -> Grant:
    """What ``integration`` is approved for at ``at`` (now by default): one query.

    A request is live from its approval until the first of its expiry and its withdrawal,
    so the answer for a past instant is the same whatever happened since. Status levers
    (a suspended integration or vendor) are not applied here; ``release_for`` applies them.
    ``excluding`` leaves out some requests (a request's diff against the *other* approvals).
    """
    from apps.governance.models import ScopeRequest

    at = at or timezone.now()
    rows = list(
        ScopeRequest.objects.live(at)
        .filter(integration_id=integration.pk)
        .exclude(pk__in=excluding)
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


@dataclass(frozen=True)
class GrantDiff:
    """What a request would add to what is approved today, per dimension."""

    added: dict[str, tuple[str, ...]]  # asked for and not granted today
    kept: dict[str, tuple[str, ...]]  # asked for and already granted
    not_renewed: dict[str, tuple[str, ...]]  # granted today (by this request's predecessor)
    #                                          and not asked for again

    @property
    def adds_anything(self) -> bool:
        return any(self.added.values())


DIFF_DIMENSIONS = ("services", "scopes", "field_classes", "fields", "claims", "org_sourced_ids")


def grant_diff(request, *, grant: Grant | None = None) -> GrantDiff:  # type: ignore[no-untyped-def]
    """Compare ``request`` with the integration's effective grant now (or ``grant``).

    ``not_renewed`` is only filled for a recertification: what the renewed approval grants
    that the new request drops (other approvals are unaffected by a new request).
    """
    if grant is None:
        # A decided request is compared with the integration's other approvals, so the
        # page still shows what this one adds once it is part of the grant.
        grant = effective_grant(request.integration, excluding=(request.pk,))
    renewed = None
    if request.renews_id is not None:
        renewed = request.renews
    added, kept, dropped = {}, {}, {}
    for name in DIFF_DIMENSIONS:
        asked = set(getattr(request, name) or ())
        have = set(getattr(grant, name))
        added[name] = tuple(sorted(asked - have))
        kept[name] = tuple(sorted(asked & have))
        before = set(getattr(renewed, name) or ()) if renewed is not None else set()
        dropped[name] = tuple(sorted((before & have) - asked))
    return GrantDiff(added=added, kept=kept, not_renewed=dropped)
