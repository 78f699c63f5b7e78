"""Reads of the versioned roster that carry its rules, so each rule is written once.

Every canonical model shares the validity columns, so these take the model:
``roster_current(User)``, ``roster_as_of(Enrollment, version=12)``,
``roster_changes(Class, since=10, until=12)``.
"""

from __future__ import annotations

from django.db.models import Q, QuerySet

from apps.roster.models import CanonicalRow, ImportRun, ImportRunError, RosterVersion, Source


def _owned(qs: QuerySet, source: Source | None) -> QuerySet:
    return qs if source is None else qs.filter(source=source)


def roster_current(model: type[CanonicalRow], *, source: Source | None = None) -> QuerySet:
    """The current state: rows not closed by any version."""
    return _owned(model.objects.filter(valid_to_version__isnull=True), source)


def roster_as_of(
    model: type[CanonicalRow], *, version: int, source: Source | None = None
) -> QuerySet:
    """The state as of version N: valid_from <= N < valid_to (or still open)."""
    return _owned(
        model.objects.filter(valid_from_version__lte=version).filter(
            Q(valid_to_version__isnull=True) | Q(valid_to_version__gt=version)
        ),
        source,
    )


def roster_changes(
    model: type[CanonicalRow], *, since: int, until: int | None = None,
    source: Source | None = None,
) -> QuerySet:
    """Rows opened or closed by a version in (since, until]: the change set between two
    versions. A closed row with no replacement opened in the range is a deletion."""
    until = until if until is not None else version_latest_number()
    return _owned(
        model.objects.filter(
            Q(valid_from_version__gt=since, valid_from_version__lte=until)
            | Q(valid_to_version__gt=since, valid_to_version__lte=until)
        ),
        source,
    )


def version_latest_number() -> int:
    latest = RosterVersion.objects.order_by("-number").values_list("number", flat=True).first()
    return latest or 0


def import_run_errors(run: ImportRun) -> QuerySet:
    return ImportRunError.objects.filter(run=run).order_by("id")


def import_runs_held() -> QuerySet:
    return ImportRun.objects.filter(state="held").select_related("source")
