"""``roster_rollback --to-version N [--source NAME] [--json]``: roll one source back to N.

Creates a new version in which the source's rows equal version N (other sources are
untouched); prints ``{"status": "applied"|"no_changes", "version", "to_version",
"changes": {...}}`` with ``--json``.
"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from apps.roster import services
from apps.roster.models import RosterVersion, Source


class Command(BaseCommand):
    help = "Roll a source's roster back to version N (as a new version)."

    def add_arguments(self, parser) -> None:  # type: ignore[no-untyped-def]
        parser.add_argument("--to-version", type=int, required=True)
        parser.add_argument("--source", default=None,
                            help="source name (default: the source that made version N)")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **options) -> None:  # type: ignore[no-untyped-def]
        number = options["to_version"]
        target = RosterVersion.objects.filter(number=number).select_related("source").first()
        if target is None:
            raise CommandError(services.ERROR_UNKNOWN_VERSION.format(number=number))
        if options["source"]:
            source = Source.objects.filter(name=options["source"]).first()
            if source is None:
                raise CommandError(f"unknown source {options['source']!r}")
        else:
            source = target.source
        version = services.roster_rollback(source=source, to_version=number, actor=None)
        if version is None:
            report = {"status": "no_changes", "version": None, "to_version": number,
                      "source": source.name,
                      "changes": {"added": 0, "updated": 0, "deleted": 0, "by_entity": {}}}
        else:
            report = {"status": "applied", "version": version.number, "to_version": number,
                      "source": source.name,
                      "changes": {"added": version.added, "updated": version.updated,
                                  "deleted": version.deleted, "by_entity": version.by_entity}}
        if options["json"]:
            self.stdout.write(json.dumps(report, indent=2))
        else:
            c = report["changes"]
            self.stdout.write(
                f"{report['status']}: {source.name} rolled back to version {number}"
                + (f" as version {report['version']}" if report["version"] else "")
                + f" (+{c['added']} ~{c['updated']} -{c['deleted']})"
            )
