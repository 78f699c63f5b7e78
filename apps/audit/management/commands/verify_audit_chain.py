"""``python manage.py verify_audit_chain [--json]``: exit 0 when intact, 1 at the first break."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from apps.audit.verify import audit_chain_verify


class Command(BaseCommand):
    help = "Verify the audit hash chain; exit 1 naming the first altered, removed or moved event."

    def add_arguments(self, parser) -> None:  # type: ignore[no-untyped-def]
        parser.add_argument("--json", action="store_true", help="Print the report as JSON.")

    def handle(self, *args, **options) -> None:  # type: ignore[no-untyped-def]
        report = audit_chain_verify()
        if options["json"]:
            self.stdout.write(json.dumps(report.as_dict(), sort_keys=True))
        elif report.intact:
            self.stdout.write(
                f"audit chain intact: {report.events} events, last #{report.last_id} "
                f"{report.last_hash}"
            )
        if not report.intact:
            raise CommandError(
                f"audit chain broken at event {report.broken_event_id}: {report.reason} "
                f"({report.detail})",
                returncode=1,
            )
