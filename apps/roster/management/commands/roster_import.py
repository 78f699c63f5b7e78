"""``roster_import PATH [--source NAME] [--dry-run] [--json]``: import a OneRoster zip in process.

Exit codes: 0 applied or no changes, 2 rejected, 3 held, 1 failed. ``--json`` prints
``{"status", "version", "counts", "changes": {"added", "updated", "deleted",
"by_entity"}, "errors": [{"file", "line", "column", "code", "message"}]}``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from apps.roster import services
from apps.roster.models import ImportRun, ImportState

EXIT_CODES = {
    ImportState.APPLIED: 0,
    ImportState.NO_CHANGES: 0,
    ImportState.REJECTED: 2,
    ImportState.HELD: 3,
    ImportState.FAILED: 1,
}


def run_report(run: ImportRun | None, *, failure: str | None = None) -> dict:
    """The pinned JSON shape of an import's outcome."""
    if run is None:
        return {
            "status": "failed", "version": None, "counts": {},
            "changes": {"added": 0, "updated": 0, "deleted": 0, "by_entity": {}},
            "errors": [{"file": "", "line": None, "column": "", "code": services.INTERNAL_ERROR,
                        "message": failure or ""}],
        }
    changes = run.changes or {}
    return {
        "status": run.state,
        "version": run.version.number if run.version_id else None,
        "counts": (run.counts or {}).get("rows", {}),
        "changes": {
            "added": changes.get("added", 0),
            "updated": changes.get("updated", 0),
            "deleted": changes.get("deleted", 0),
            "by_entity": {
                entity: {k: figures.get(k, 0) for k in ("added", "updated", "deleted")}
                for entity, figures in changes.get("by_entity", {}).items()
            },
        },
        "errors": [error.as_dict() for error in run.errors.all()],
    }


class Command(BaseCommand):
    help = "Import a OneRoster 1.1/1.2 CSV zip into the canonical roster (exit 0/2/3/1)."

    def add_arguments(self, parser) -> None:  # type: ignore[no-untyped-def]
        parser.add_argument("path")
        parser.add_argument("--source", default=services.DEFAULT_SOURCE_NAME)
        parser.add_argument("--dry-run", action="store_true")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **options) -> None:  # type: ignore[no-untyped-def]
        path = Path(options["path"])
        if not path.is_file():
            raise CommandError(f"{path} is not a file")
        as_json = options["json"]
        progress = None
        if not as_json and sys.stderr.isatty():
            progress = self._progress_bar
        with open(path, "rb") as src:
            run = services.import_run_create(
                src=src, file_name=path.name, source=options["source"],
                dry_run=options["dry_run"],
            )
        failure = None
        try:
            run = services.import_run_process(run=run, progress=progress)
        except Exception as exc:  # recorded on the run (failed) and alerted by the service
            failure = f"{type(exc).__name__}: {exc}"
            run.refresh_from_db()
        if progress is not None:
            sys.stderr.write("\n")
        report = run_report(run, failure=failure)
        if as_json:
            self.stdout.write(json.dumps(report, indent=2, default=str))
        else:
            self._human(report, run)
        code = EXIT_CODES.get(report["status"], 1)
        if code:
            sys.exit(code)

    def _progress_bar(self, phase: str, rows: int) -> None:
        sys.stderr.write(f"\r  {phase:<20} {rows:>12,} rows")
        sys.stderr.flush()

    def _human(self, report: dict, run: ImportRun | None) -> None:
        changes = report["changes"]
        version = f" as version {report['version']}" if report["version"] else ""
        self.stdout.write(
            f"{report['status']}{version}: +{changes['added']} ~{changes['updated']} "
            f"-{changes['deleted']}"
        )
        if run is not None and run.dry_run:
            self.stdout.write(services.MESSAGE_DRY_RUN)
        if run is not None and run.state == ImportState.HELD:
            self.stdout.write(run.message)
        for error in report["errors"][:50]:
            where = ":".join(str(x) for x in (error["file"], error["line"]) if x)
            self.stdout.write(f"  {where} {error['column'] or ''} {error['code']}: "
                              f"{error['message']}")
        if len(report["errors"]) > 50:
            self.stdout.write(f"  ... and {len(report['errors']) - 50} more (see the admin)")
