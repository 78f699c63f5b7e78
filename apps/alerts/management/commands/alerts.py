"""List the live alerts, worst first."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand

from apps.alerts.alerts import open_alerts


class Command(BaseCommand):
    help = "List open and acknowledged alerts, worst first."

    def add_arguments(self, parser) -> None:  # type: ignore[no-untyped-def]
        parser.add_argument("--json", action="store_true", help="print a JSON array")

    def handle(self, *args, **options) -> None:  # type: ignore[no-untyped-def]
        rows = [
            {
                "id": alert.pk,
                "severity": alert.severity,
                "rule": alert.rule,
                "subject": alert.subject,
                "state": alert.state,
                "occurrences": alert.occurrences,
                "first_seen": alert.first_seen_at.isoformat(),
                "last_seen": alert.last_seen_at.isoformat(),
                "assignee": alert.assignee.get_username() if alert.assignee else None,
            }
            for alert in open_alerts()
        ]
        if options["json"]:
            self.stdout.write(json.dumps(rows, indent=2))
            return
        if not rows:
            self.stdout.write("No open alerts.")
            return
        for row in rows:
            self.stdout.write(
                f"#{row['id']:<5} {row['severity']:<8} {row['state']:<12} x{row['occurrences']:<4} "
                f"{row['rule']}: {row['subject']}"
            )
