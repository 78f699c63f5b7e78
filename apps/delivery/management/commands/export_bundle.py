"""python manage.py export_bundle --integration NAME --out PATH.zip [--since-version N]

Writes the bundle that integration would receive now, as a plain zip, for staff to inspect.
It is not a delivery (nothing is sent or recorded as disclosed), but it is audited.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from apps.delivery import services
from apps.vendors.models import Integration


class Command(BaseCommand):
    help = "Write the OneRoster CSV bundle an integration would receive (plain zip)."

    def add_arguments(self, parser) -> None:  # type: ignore[no-untyped-def]
        parser.add_argument("--integration", required=True)
        parser.add_argument("--out", required=True)
        parser.add_argument("--since-version", type=int, default=None)
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **options) -> None:  # type: ignore[no-untyped-def]
        try:
            integration = Integration.objects.get(name=options["integration"])
        except Integration.DoesNotExist:
            raise CommandError(f"No integration {options['integration']!r}.") from None
        out = Path(options["out"])
        temporary = out.with_name(f".{out.name}.part")
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as handle:
                result = services.export_bundle_write(
                    integration=integration, out=handle, since=options["since_version"]
                )
            os.replace(temporary, out)
        except services.DeliveryError as exc:
            raise CommandError(str(exc)) from None
        finally:
            temporary.unlink(missing_ok=True)
        report = {"path": str(out), "mode": result.mode, "version_from": result.version_from,
                  "version_to": result.version_to, "rows": result.counts,
                  "tobedeleted": result.deleted}
        self.stdout.write(json.dumps(report) if options["json"] else
                          f"wrote {out} ({result.mode}, {result.total_rows} rows)")
