"""python manage.py sis_pull --source NAME [--json]

Pulls once from a SIS source (SFTP pickup or OneRoster REST) into the ingest pipeline, in
process, and reports the import runs it started (none when nothing new was found).
"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from apps.delivery import sources
from apps.delivery.models import SisSource


class Command(BaseCommand):
    help = "Pull once from a SIS source into the ingest pipeline."

    def add_arguments(self, parser) -> None:  # type: ignore[no-untyped-def]
        parser.add_argument("--source", required=True)
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **options) -> None:  # type: ignore[no-untyped-def]
        try:
            source = SisSource.objects.get(name=options["source"])
        except SisSource.DoesNotExist:
            raise CommandError(f"No SIS source {options['source']!r}.") from None
        try:
            runs = sources.sis_source_poll(source=source)
        except sources.SOURCE_ERRORS as exc:
            raise CommandError(str(exc)) from None
        report = [{"import_run": r.pk, "file": r.file_name, "state": r.state,
                   "version": r.version.number if r.version_id else None} for r in runs]
        if options["json"]:
            self.stdout.write(json.dumps(report))
        else:
            self.stdout.write(f"{len(report)} new import run(s)")
            for row in report:
                self.stdout.write(f"  #{row['import_run']} {row['file']}: {row['state']}")
