"""A source's first import: work done beside the index builds that use one core.

A first import writes every table from empty and builds its indexes afterwards, with
parallel workers, except the GIN index of the users' agents, which PostgreSQL builds on
one process before version 18. ``diff_apply`` leaves those builds to the end and runs
``BesideIndexBuilds`` on a second connection meanwhile, on the core they leave idle:

* the quality gates' baseline, counted from the staged files (``gates.FirstImportCounts``)
  instead of from the written tables afterwards;
* whether the staged roles give a user two primary roles at an org: the one check left
  until after the writes, since a conflict is rare; when it finds one (or did not run),
  the import's own connection checks again, names the conflicts, and the import is
  rejected with nothing applied (the transaction is rolled back).

For a first load the state after the import is the staged rows, before the writes and
after them alike, so the check and the counts give what they would have given in their
usual place. The second connection reads staging alone: the canonical tables are locked by
the import until it commits. Its work must fit in the stretch (the import waits for it):
aggregates over the staged files, each one pass, never a join that could go quadratic.
"""

# SQL here is composed from identifiers of the schema registry (never from input).

from __future__ import annotations

from dataclasses import dataclass

from apps.roster.ingest import validate_sql
from apps.roster.ingest.apply import ChangeSet, one_process_build_ahead
from apps.roster.ingest.errors import IngestError
from apps.roster.ingest.gates import Counts, FirstImportCounts
from apps.roster.ingest.relay import reading_beside, view_definition


@dataclass(frozen=True)
class Found:
    counts: dict[str, Counts] | None  # the staged files' gate counts, when asked for
    primary_conflict: bool | None  # None: not checked here


class BesideIndexBuilds:
    def __init__(self, *, counts: FirstImportCounts | None, roles: str | None,
                 views: dict[str, str]) -> None:
        self.counts, self.roles, self.views = counts, roles, views

    @classmethod
    def plan(cls, changes: ChangeSet, modes: dict[str, str], *, source_id: int,
             gated: bool) -> BesideIndexBuilds | None:
        """What a second connection can do for this import (None: nothing, e.g. not a
        first import, no one-process index build ahead, or no staged file another
        connection can read)."""
        if not one_process_build_ahead(changes):
            return None
        counts = FirstImportCounts.of(changes) if gated else None
        views = dict(counts.views) if counts is not None else {}
        roles = None
        change = changes.by_entity.get("roles")
        if (change is not None and change.first_load and change.added
                and modes.get("roles") in ("bulk", "delta")):
            view = views.get("roles") or view_definition("roles")
            if view is not None:
                views["roles"] = view
                # a bulk file's post-state: the staged rows alone, the same as a delta's
                # when the source has no roles yet, and never the canonical table (this
                # import's connection holds it locked until it commits)
                roles = validate_sql.primary_roles_post_state(
                    source_id=source_id, mode="bulk", change=change)
        if counts is None and roles is None:
            return None
        return cls(counts=counts, roles=roles, views=views)

    @property
    def checks_primary_roles(self) -> bool:
        return self.roles is not None

    def left_to_check(self, source_id: int, modes: dict[str, str], changes: ChangeSet,
                      found: Found | None = None) -> list[IngestError]:
        """The checks left for after the writes, made on the import's connection in full
        unless the work beside cleared them (``found``; without it, none is cleared)."""
        if not self.checks_primary_roles or (found is not None
                                             and found.primary_conflict is False):
            return []
        return validate_sql.check_primary_roles(source_id=source_id, mode=modes["roles"],
                                                change=changes.by_entity["roles"])

    def __call__(self) -> Found:
        with reading_beside(self.views):  # the other core is the index build's
            counted = self.counts.staged() if self.counts is not None else None
            conflict = (validate_sql.primary_roles_conflict(self.roles)
                        if self.roles is not None else None)
        return Found(counts=counted, primary_conflict=conflict)
