"""python manage.py deliver --integration NAME [--version N] [--bulk] [--json]

Runs a delivery in process (through the same services a worker calls) and reports its run.
Exit status 1 when the run did not end delivered (failed, skipped, or waiting to retry).
"""

from __future__ import annotations

import json

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.delivery import services
from apps.delivery.models import Destination, RunReason, RunState
from apps.vendors.models import Integration


class Command(BaseCommand):
    help = "Deliver the current bundle to an integration's destination and report the run."

    def add_arguments(self, parser) -> None:  # type: ignore[no-untyped-def]
        # --version names a roster version here: drop Django's program-version flag
        builtin = parser._option_string_actions.get("--version")  # noqa: SLF001
        if builtin is not None:
            parser._handle_conflict_resolve(None, [("--version", builtin)])  # noqa: SLF001
        parser.add_argument("--integration", required=True)
        parser.add_argument("--version", type=int, default=None,
                            help="The roster version asked for (default: the latest).")
        parser.add_argument("--bulk", action="store_true", help="Send a full bulk.")
        parser.add_argument("--replay", action="store_true",
                            help="Deliver the run of --version again (same bundle).")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **options) -> None:  # type: ignore[no-untyped-def]
        try:
            integration = Integration.objects.get(name=options["integration"])
            destination = Destination.objects.get(integration=integration)
        except (Integration.DoesNotExist, Destination.DoesNotExist):
            raise CommandError(
                f"No destination for integration {options['integration']!r}."
            ) from None
        if options["replay"]:
            if options["version"] is None:
                raise CommandError("--replay needs --version N.")
            run = (destination.runs.filter(version_to=options["version"])
                   .order_by("-created_at").first())
            if run is None:
                raise CommandError(f"No run delivered version {options['version']}.")
            run = services.delivery_run_replay(run=run, actor=None)
        else:
            run, _ = services.delivery_run_enqueue(
                destination=destination, reason=RunReason.MANUAL, version=options["version"],
                force_bulk=options["bulk"],
            )
        result = services.delivery_run_execute(
            run=run, base_url=getattr(settings, "INTERCHANGE_BASE_URL", "")
        )
        run = result.run
        run.refresh_from_db()
        report = {
            "run": run.pk, "integration": integration.name, "state": run.state,
            "mode": run.mode, "version_from": run.version_from, "version_to": run.version_to,
            "rows": (run.counts or {}).get("rows", {}),
            "tobedeleted": (run.counts or {}).get("tobedeleted", {}),
            "bytes": run.bytes_sent, "remote_name": run.remote_name,
            "attempts": run.attempts, "error_code": run.error_code, "error": run.error,
            "timings": run.timings,
        }
        if result.link_url:
            report["download_url"] = result.link_url  # shown once: only its hash is kept
        if options["json"]:
            self.stdout.write(json.dumps(report, indent=2))
        else:
            for key, value in report.items():
                self.stdout.write(f"{key}: {value}")
        if run.state != RunState.DELIVERED:
            raise SystemExit(1)
