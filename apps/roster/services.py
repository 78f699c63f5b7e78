"""Roster services: the import pipeline, holds, rollback, rule sets, retention.

The pipeline, for one ``ImportRun``::

    received --stage encrypted--> validating --parse + COPY + file checks--> applying
        --(under the source's lock, one transaction) state checks, diff, gates, apply-->
        applied | no_changes | held | rejected          (failed on any unexpected error)

Everything a run needs is on the run record and the encrypted staged file, so the
CLI, the Celery task and the admin's approve action all call ``import_run_process``
and a held run is applied later by processing it again with ``approved=True``.
Nothing is written to the canonical tables unless the whole feed is valid; readers
see the previous version until the apply transaction commits.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, connection, transaction
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from apps.alerts import alerts
from apps.audit import audit
from apps.roster import schema
from apps.roster.ingest import apply as apply_sql
from apps.roster.ingest import fastcopy, gates, staging, store, validate_sql
from apps.roster.ingest.errors import IngestError
from apps.roster.ingest.first_import import BesideIndexBuilds
from apps.roster.ingest.mapping import DEFAULT_RULES, MappingRules
from apps.roster.ingest.rollback import rollback_apply
from apps.roster.models import (
    FINAL_STATES,
    IMPORT_TRANSITIONS,
    ImportOrigin,
    ImportRun,
    ImportRunError,
    ImportState,
    MappingRuleSet,
    QualityGate,
    RosterOutbox,
    RosterVersion,
    Source,
)

logger = logging.getLogger(__name__)

DEFAULT_SOURCE_NAME = "sis"
PERMISSION_APPROVE = "roster.approve_held_import"
MAX_STORED_ERRORS = 10_000
PROGRESS_SAVE_SECONDS = 1.0

INTERNAL_ERROR = "INTERNAL_ERROR"
ERROR_NOT_HELD = "Only a held import can be approved or rejected (this one is {state})."
ERROR_DRY_RUN_DECISION = "A dry run applies nothing and cannot be approved."
ERROR_REASON_REQUIRED = "Give a reason for rejecting a held import."
ERROR_NOT_ALLOWED = "You are not allowed to approve or reject held imports."
ERROR_UNKNOWN_VERSION = "Version {number} does not exist."
ERROR_ILLEGAL_TRANSITION = "Import run #{run} cannot go from {old} to {new}."
ERROR_STAGED_FILE_GONE = "The staged file was purged; upload the feed again."
MESSAGE_DRY_RUN = "Dry run: nothing was applied."

ProgressCallback = Callable[[str, int], None]


class _Rejected(Exception):
    def __init__(self, errors: list[IngestError]) -> None:
        self.errors = errors


class _Held(Exception):
    def __init__(self, trips: list[gates.Trip], changes: apply_sql.ChangeSet) -> None:
        self.trips = trips
        self.changes = changes


class _NothingToWrite(Exception):
    """Leave the apply transaction without writing (dry run, empty rollback)."""


# --- sources, rule sets, gates ----------------------------------------------------------------


def source_get_or_create(*, name: str = DEFAULT_SOURCE_NAME) -> Source:
    source, _ = Source.objects.get_or_create(name=name)
    return source


def _source(source: Source | str | None) -> Source:
    if isinstance(source, Source):
        return source
    return source_get_or_create(name=source or DEFAULT_SOURCE_NAME)


@transaction.atomic
def mapping_rule_set_create(
    *, source: Source, rules: dict, actor=None, comment: str = ""  # type: ignore[no-untyped-def]
) -> MappingRuleSet:
    """The next version of a source's mapping rules (rule sets are never edited); audited."""
    normalised = MappingRules.from_dict(rules).to_dict()  # refuses unknown keys
    Source.objects.select_for_update().get(pk=source.pk)
    latest = source.rule_sets.order_by("-version").first()
    rule_set = MappingRuleSet.objects.create(
        source=source,
        version=(latest.version + 1) if latest else 1,
        rules=normalised,
        comment=comment,
        created_by=actor,
    )
    audit.record(
        actor=actor,
        action="roster.mapping_rule_set_created",
        target=rule_set,
        details={
            "source": source.name,
            "version": rule_set.version,
            "previous": latest.rules if latest else None,
            "rules": normalised,
            "comment": comment,
        },
    )
    return rule_set


def mapping_rule_set_current(*, source: Source) -> MappingRuleSet:
    """The rule set new imports use: the latest version, or version 1 from the defaults."""
    latest = source.rule_sets.order_by("-version").first()
    if latest is None:
        latest = mapping_rule_set_create(
            source=source, rules=DEFAULT_RULES.to_dict(), comment="initial defaults"
        )
    return latest


def _thresholds(source: Source) -> gates.Thresholds | None:
    gate = QualityGate.objects.filter(source=source).first()
    if gate is None:
        return gates.Thresholds()
    if not gate.enabled:
        return None
    return gates.Thresholds(
        max_change_percent=gate.max_change_percent,
        max_delete_percent=gate.max_delete_percent,
        min_records=gate.min_records,
        hold_when_learners_double=gate.hold_when_learners_double,
    )


# --- runs ------------------------------------------------------------------------------------


def _transition(run: ImportRun, new: str, **fields) -> None:  # type: ignore[no-untyped-def]
    if new not in IMPORT_TRANSITIONS[run.state]:
        raise RuntimeError(ERROR_ILLEGAL_TRANSITION.format(run=run.pk, old=run.state, new=new))
    run.state = new
    for name, value in fields.items():
        setattr(run, name, value)
    if new in FINAL_STATES:
        run.finished_at = timezone.now()
    run.save()


def _record_errors(run: ImportRun, errors: Iterable[IngestError]) -> None:
    batch: list[ImportRunError] = []
    total = 0
    for error in errors:
        total += 1
        if total <= MAX_STORED_ERRORS:
            batch.append(
                ImportRunError(
                    run=run, file=error.file or "", line=error.line, column=error.column or "",
                    code=error.code, message=error.message,
                )
            )
    ImportRunError.objects.bulk_create(batch, batch_size=1000)
    run.error_count = total


def import_run_create(
    *,
    src: BinaryIO,
    file_name: str,
    source: Source | str | None = None,
    actor=None,  # type: ignore[no-untyped-def]
    dry_run: bool = False,
    origin: str = ImportOrigin.CLI,
) -> ImportRun:
    """Receive a feed: encrypt it into staging and open a run for it (state received)."""
    source = _source(source)
    path, sha256, size = store.stage_file(src)
    return ImportRun.objects.create(
        source=source,
        file_name=Path(file_name).name[:255],
        file_sha256=sha256,
        size_bytes=size,
        staged_path=str(path),
        dry_run=dry_run,
        origin=origin,
        created_by=actor,
        rule_set=mapping_rule_set_current(source=source),
    )


def roster_import_run(
    *,
    path: str | Path,
    source: Source | str | None = None,
    actor=None,  # type: ignore[no-untyped-def]
    dry_run: bool = False,
    origin: str = ImportOrigin.CLI,
    progress: ProgressCallback | None = None,
) -> ImportRun:
    """Import one OneRoster zip from a path, in process, through the whole pipeline."""
    with open(path, "rb") as src:
        run = import_run_create(
            src=src, file_name=str(path), source=source, actor=actor, dry_run=dry_run,
            origin=origin,
        )
    return import_run_process(run=run, progress=progress)


class _Progress:
    """Saves the run's progress (throttled) for the admin and feeds an optional callback.

    Never call it while a COPY is in progress: it writes through the same connection.
    """

    def __init__(self, run: ImportRun, callback: ProgressCallback | None) -> None:
        self.run = run
        self.callback = callback
        self.saved_at = 0.0

    def __call__(self, phase: str, rows: int) -> None:
        if self.callback is not None:
            self.callback(phase, rows)
        now = time.monotonic()
        if now - self.saved_at >= PROGRESS_SAVE_SECONDS:
            self.saved_at = now
            ImportRun.objects.filter(pk=self.run.pk).update(progress={"phase": phase, "rows": rows})


def import_run_process(
    *, run: ImportRun, approved: bool = False, progress: ProgressCallback | None = None
) -> ImportRun:
    """Run the pipeline for a received (or approved held) run; never raises for a bad feed.

    Unexpected errors mark the run failed (with an alert) and are re-raised, so a
    worker's logs and the CLI's exit code both show them.
    """
    from apps.roster.ingest.parse import open_feed  # PARSE's module; imported late

    if approved and run.decided_by_id is None:
        raise PermissionDenied(ERROR_NOT_ALLOWED)  # gates are only skipped on a recorded approval
    timings: dict[str, float] = {}
    started = time.monotonic()
    report = _Progress(run, progress)
    supplied: list[str] = []
    try:
        if not run.staged_path:
            _transition(run, ImportState.VALIDATING)
            _transition(run, ImportState.FAILED, message=ERROR_STAGED_FILE_GONE)
            return run
        _transition(run, ImportState.VALIDATING, progress={"phase": "parsing", "rows": 0})
        rules = MappingRules.from_dict(run.rule_set.rules) if run.rule_set else DEFAULT_RULES
        with (
            store.staged_plaintext(run.staged_path) as plain,
            open_feed(plain, rules=rules) as feed,
        ):
            run.oneroster_version = feed.version or ""
            if feed.fatal:
                _record_errors(run, feed.errors)
                _transition(run, ImportState.REJECTED, timings=timings)
                return run
            modes = {e: feed.mode(e) for e in schema.ENTITIES}
            supplied = [e for e in schema.ENTITIES if modes[e] in ("bulk", "delta")]
            staging.staging_create(supplied)
            counts = fastcopy.stage_feed(feed, supplied, progress=progress, staged=report)
            row_errors = list(feed.errors)
            if feed.fatal:
                _record_errors(run, row_errors)
                _transition(run, ImportState.REJECTED, timings=timings)
                return run
        timings["parse_copy"] = round(time.monotonic() - started, 3)
        run.counts = {"rows": counts, "modes": {e: modes[e] for e in supplied}}
        if row_errors:
            # rejected already: the repeats are reported too (otherwise the diff finds them)
            mark = time.monotonic()
            _record_errors(run, row_errors + validate_sql.check_duplicates(supplied))
            timings["check_file"] = round(time.monotonic() - mark, 3)
            _transition(run, ImportState.REJECTED, timings=timings)
            return run
        _transition(run, ImportState.APPLYING, progress={"phase": "applying"})
        try:
            changes = _apply(run, modes=modes, staged=counts, approved=approved,
                             timings=timings)
        except _Rejected as rejected:
            _record_errors(run, rejected.errors)
            _transition(run, ImportState.REJECTED, timings=timings)
            return run
        except _Held as held:
            _hold(run, held, timings=timings)
            return run
        timings["total"] = round(time.monotonic() - started, 3)
        final = ImportState.NO_CHANGES if changes.is_empty else ImportState.APPLIED
        _transition(
            run, final, changes=changes.as_dict(), timings=timings, progress={"phase": "done"},
            message=MESSAGE_DRY_RUN if run.dry_run else run.message,
        )
        return run
    except Exception as exc:
        logger.exception("roster import run %s failed", run.pk)
        run.refresh_from_db()
        if not run.is_final:
            if run.state == ImportState.RECEIVED:
                _transition(run, ImportState.VALIDATING)
            _record_errors(run, [IngestError("", None, None, INTERNAL_ERROR, type(exc).__name__)])
            _transition(run, ImportState.FAILED, message=f"{type(exc).__name__}: {exc}"[:2000])
            alerts.raise_alert(
                rule="roster.import_failed",
                subject=f"Roster import #{run.pk} ({run.source}) failed",
                severity="critical",
                details={"run": run.pk, "error": type(exc).__name__},
                evidence=_evidence(run),
            )
        raise
    finally:
        apply_sql.diff_drop(supplied)
        staging.staging_drop(supplied)


class _RepeatSuspected(Exception):
    """The apply hit the unique index of a first-loaded entity: a sourcedId repeats."""

    def __init__(self, entities: list[str],
                 unchecked: Callable[[], list[IngestError]] | None = None) -> None:
        super().__init__(", ".join(entities))
        self.entities = entities
        self.unchecked = unchecked  # a check left for after the writes, not yet made


def _apply(
    run: ImportRun, *, modes: dict[str, str], staged: dict[str, int], approved: bool,
    timings: dict[str, float],
) -> apply_sql.ChangeSet:
    """Under the source's lock, in one transaction: diff, checks, gates, apply."""
    try:
        return _apply_locked(run, modes=modes, staged=staged, approved=approved,
                             timings=timings,
                             # staged rows another connection can read: committed
                             concurrent=not connection.in_atomic_block)
    except _RepeatSuspected as suspected:
        # the transaction is rolled back; staging outlives it, so the repeats can be named
        errors = validate_sql.check_duplicates(suspected.entities)
        if errors and suspected.unchecked is not None:
            errors += suspected.unchecked()  # every problem reported
        if errors:
            raise _Rejected(errors) from None
        raise suspected.__cause__ from None  # type: ignore[misc]


def _apply_locked(
    run: ImportRun, *, modes: dict[str, str], staged: dict[str, int], approved: bool,
    timings: dict[str, float], concurrent: bool,
) -> apply_sql.ChangeSet:
    source_id = run.source_id
    result: apply_sql.ChangeSet | None = None
    try:
        with transaction.atomic():
            mark = time.monotonic()
            apply_sql.lock_source(source_id)
            changes = apply_sql.diff_compute(source_id=source_id, modes=modes, staged=staged,
                                             concurrent=concurrent)
            timings["diff"] = round(time.monotonic() - mark, 3)
            mark = time.monotonic()
            errors, deferred = validate_sql.check_duplicates_after_diff(
                modes=modes, changes=changes)
            thresholds = _thresholds(run.source)
            has_baseline = RosterVersion.objects.filter(source_id=source_id).exists()
            # a first import's work for a second connection beside its index builds
            first = (BesideIndexBuilds.plan(changes, modes, source_id=source_id,
                                            gated=thresholds is not None)
                     if not has_baseline and concurrent and not run.dry_run else None)
            errors += validate_sql.check_state(
                source_id=source_id, modes=modes, changes=changes, concurrent=concurrent,
                primary_roles_later=first is not None and first.checks_primary_roles)
            timings["check_state"] = round(time.monotonic() - mark, 3)
            if errors:
                if first is not None:  # every problem reported
                    errors += first.left_to_check(source_id, modes, changes)
                # rejected anyway: name the repeats the apply would otherwise have found
                raise _Rejected(validate_sql.check_duplicates(deferred) + errors)
            check = None
            if not approved and thresholds is not None and has_baseline and not changes.is_empty:
                check = gates.gates_check(
                    source_id=source_id, changes=changes, thresholds=thresholds
                )
            held = check is not None and bool(check.trips)
            if held or run.dry_run:
                # not applied now, so the unique index will not find the repeats: a held
                # import must be one that can be applied as it is, a dry run must say so
                repeats = validate_sql.check_duplicates(deferred)
                if repeats:
                    raise _Rejected(repeats)
            if held:
                raise _Held(check.trips, changes)  # type: ignore[union-attr]
            result = changes
            if changes.is_empty or run.dry_run:
                raise _NothingToWrite
            mark = time.monotonic()
            number = apply_sql.next_version_number()
            try:
                found = apply_sql.diff_apply(source_id=source_id, version=number,
                                             changes=changes, concurrent=concurrent,
                                             meanwhile=first)
            except IntegrityError as exc:
                if not deferred:
                    raise
                raise _RepeatSuspected(deferred, unchecked=(
                    partial(first.left_to_check, source_id, modes, changes)
                    if first is not None else None)) from exc
            if first is not None:
                # the first load's state is its staged rows, after the writes as before
                late = first.left_to_check(source_id, modes, changes, found)
                if late:
                    raise _Rejected(late)  # and the writes are rolled back
            version = _version_create(
                number=number, source=run.source, changes=changes, kind="import",
                import_run=run, actor=run.decided_by or run.created_by,
            )
            run.version = version
            if thresholds is not None:
                # the next import's baseline: what this one leaves, counted afresh only
                # when the gates did not know it exactly (a first import, an approval)
                if check is not None and check.counts_after is not None:
                    counts = check.counts_after
                elif first is not None and first.counts is not None:
                    counts = first.counts.complete(source_id, found and found.counts)
                else:
                    counts = gates.source_counts(source_id)
                gates.baseline_store(source_id, version=number, counts=counts)
            timings["apply"] = round(time.monotonic() - mark, 3)
            audit.record(
                actor=run.decided_by or run.created_by,
                action="roster.import_applied",
                target=version,
                details={"run": run.pk, "source": run.source.name, "version": number,
                         "approved_hold": approved, **_totals(changes)},
            )
    except _NothingToWrite:
        pass
    assert result is not None
    return result


def _totals(changes: apply_sql.ChangeSet) -> dict[str, int]:
    return {"added": changes.added, "updated": changes.updated, "deleted": changes.deleted}


def _version_create(
    *, number: int, source: Source, changes: apply_sql.ChangeSet, kind: str,
    import_run: ImportRun | None = None, actor=None, rolled_back_to: int | None = None,  # type: ignore[no-untyped-def]
) -> RosterVersion:
    version = RosterVersion.objects.create(
        number=number,
        source=source,
        import_run=import_run,
        kind=kind,
        rolled_back_to=rolled_back_to,
        by_entity=changes.as_dict()["by_entity"],
        created_by=actor,
        **_totals(changes),
    )
    RosterOutbox.objects.create(
        version=version,
        payload={"version": number, "source": source.name, "kind": kind,
                 "changes": changes.as_dict()},
    )
    transaction.on_commit(lambda: apply_sql.statistics_refresh(changes))
    return version


def _evidence(run: ImportRun) -> list[dict]:
    try:
        return [{"label": f"Import run #{run.pk}",
                 "url": reverse("admin:roster_importrun_change", args=[run.pk])}]
    except NoReverseMatch:
        return []


def _hold(run: ImportRun, held: _Held, *, timings: dict[str, float]) -> None:
    _transition(
        run,
        ImportState.HELD,
        gate_report=[t.as_dict() | {"summary": t.describe()} for t in held.trips],
        changes=held.changes.as_dict(),
        timings=timings,
        message="Held by the quality gates: " + "; ".join(t.describe() for t in held.trips[:5]),
    )
    if run.dry_run:
        return
    alerts.raise_alert(
        rule="roster.import_held",
        subject=f"Roster import #{run.pk} ({run.source}) held by the quality gates",
        severity="warning",
        dedup_key=f"roster.import_held:{run.pk}",
        details={"run": run.pk, "source": run.source.name,
                 "trips": [t.describe() for t in held.trips[:20]]},
        evidence=_evidence(run),
    )


# --- holds -----------------------------------------------------------------------------------


def _decide(*, run: ImportRun, actor) -> ImportRun:  # type: ignore[no-untyped-def]
    if actor is None or not actor.has_perm(PERMISSION_APPROVE):
        raise PermissionDenied(ERROR_NOT_ALLOWED)
    locked = ImportRun.objects.select_for_update().get(pk=run.pk)
    if locked.state != ImportState.HELD:
        raise ValueError(ERROR_NOT_HELD.format(state=locked.state))
    if locked.dry_run:
        raise ValueError(ERROR_DRY_RUN_DECISION)
    return locked


def import_run_approve(  # type: ignore[no-untyped-def]
    *, run: ImportRun, actor, reason: str = "", process: bool = True
) -> ImportRun:
    """Approve a held import (audited), then apply it without the gates.

    ``process=False`` records the decision only, for callers that enqueue the
    processing (the admin hands it to a worker).
    """
    with transaction.atomic():
        locked = _decide(run=run, actor=actor)
        locked.decided_by = actor
        locked.decided_at = timezone.now()
        locked.decision_reason = reason
        locked.save(update_fields=["decided_by", "decided_at", "decision_reason"])
        audit.record(
            actor=actor, action="roster.import_approved", target=locked,
            details={"run": locked.pk, "source": locked.source.name, "reason": reason,
                     "gate_report": locked.gate_report},
        )
    if process:
        return import_run_process(run=locked, approved=True)
    return locked


@transaction.atomic
def import_run_reject(*, run: ImportRun, actor, reason: str) -> ImportRun:  # type: ignore[no-untyped-def]
    """Reject a held import with a reason (audited); nothing is applied."""
    if not reason.strip():
        raise ValueError(ERROR_REASON_REQUIRED)
    locked = _decide(run=run, actor=actor)
    _transition(
        locked, ImportState.REJECTED, decided_by=actor, decided_at=timezone.now(),
        decision_reason=reason,
    )
    audit.record(
        actor=actor, action="roster.import_rejected", target=locked,
        details={"run": locked.pk, "source": locked.source.name, "reason": reason},
    )
    return locked


# --- rollback --------------------------------------------------------------------------------


def roster_rollback(  # type: ignore[no-untyped-def]
    *, source: Source | str | None, to_version: int, actor=None
) -> RosterVersion | None:
    """A new version in which ``source``'s rows equal version ``to_version``; audited.

    Other sources' rows are untouched. Returns None (and writes nothing) when the
    source's rows already equal that version.
    """
    source = _source(source)
    if not RosterVersion.objects.filter(number=to_version).exists():
        raise ValueError(ERROR_UNKNOWN_VERSION.format(number=to_version))
    created: RosterVersion | None = None
    try:
        with transaction.atomic():
            apply_sql.lock_source(source.pk)
            number = apply_sql.next_version_number()
            changes = rollback_apply(source_id=source.pk, to_version=to_version, version=number)
            if changes.is_empty:
                raise _NothingToWrite
            created = _version_create(
                number=number, source=source, changes=changes, kind="rollback",
                actor=actor, rolled_back_to=to_version,
            )
            audit.record(
                actor=actor, action="roster.rolled_back", target=created,
                details={"source": source.name, "to_version": to_version, "version": number,
                         **_totals(changes)},
            )
    except _NothingToWrite:
        return None
    return created


# --- retention and drop folder ---------------------------------------------------------------


def staged_files_purge(*, older_than_days: int | None = None, now=None) -> int:  # type: ignore[no-untyped-def]
    """Delete staged files (and their data keys) of finished runs past the retention window.

    Held and in-progress runs keep their file: it is what an approval applies.
    """
    days = older_than_days
    if days is None:
        days = getattr(settings, "INTERCHANGE_STAGING_RETENTION_DAYS", 7)
    cutoff = (now or timezone.now()) - timedelta(days=days)
    runs = ImportRun.objects.filter(
        received_at__lt=cutoff, staged_purged_at__isnull=True, state__in=FINAL_STATES
    ).exclude(staged_path="")
    purged = 0
    for run in runs.iterator():
        store.purge_staged(run.staged_path)
        ImportRun.objects.filter(pk=run.pk).update(staged_path="", staged_purged_at=timezone.now())
        purged += 1
    return purged


DROP_SETTLE_SECONDS = 10


def drop_folder_scan(
    *, directory: str | Path | None = None, source: Source | str | None = None,
    settle_seconds: int = DROP_SETTLE_SECONDS,
) -> list[ImportRun]:
    """Import each zip in the drop folder once (by content hash), oldest first.

    A file still being written (modified within ``settle_seconds``) waits for the
    next scan. Once staged encrypted, the plaintext file is removed from the folder;
    a file whose content was already imported from the drop folder is removed too.
    """
    folder = directory or getattr(settings, "INTERCHANGE_ROSTER_DROP_DIR", None)
    if not folder or not Path(folder).is_dir():
        return []
    source = _source(source)
    runs = []
    now = time.time()
    candidates = sorted(
        (p for p in Path(folder).iterdir() if p.suffix.lower() == ".zip" and p.is_file()),
        key=lambda p: p.stat().st_mtime,
    )
    for path in candidates:
        if now - path.stat().st_mtime < settle_seconds:
            continue
        with open(path, "rb") as src:
            digest = store.sha256_of(src)
        seen = ImportRun.objects.filter(
            source=source, origin=ImportOrigin.DROP_FOLDER, file_sha256=digest
        ).exists()
        if not seen:
            with open(path, "rb") as src:
                run = import_run_create(
                    src=src, file_name=path.name, source=source, origin=ImportOrigin.DROP_FOLDER
                )
            runs.append(run)
        path.unlink()
    for run in runs:
        try:
            import_run_process(run=run)
        except Exception:  # noqa: S112 (recorded as failed and alerted; carry on with the rest)
            continue
    return runs
