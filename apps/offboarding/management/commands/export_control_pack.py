"""Export a signed integration control pack for one vendor (and optionally one period)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.offboarding.packs import ControlPackError, control_pack_export
from apps.vendors.models import Vendor


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"{value!r} is not a date (YYYY-MM-DD).") from None


class Command(BaseCommand):
    help = "Export a signed control pack (zip) for a vendor; it is also kept encrypted."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--vendor", required=True, help="The vendor's name.")
        parser.add_argument("--out", required=True, help="Where to write the zip.")
        parser.add_argument("--from", dest="period_from", type=_date, help="YYYY-MM-DD")
        parser.add_argument("--to", dest="period_to", type=_date, help="YYYY-MM-DD")
        parser.add_argument("--as", dest="username",
                            help="The staff account the export is recorded against.")
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        vendor = Vendor.objects.filter(name=options["vendor"]).first()
        if vendor is None:
            raise CommandError(f"No vendor named {options['vendor']!r}.")
        actor = None
        if options["username"]:
            actor = get_user_model().objects.filter(username=options["username"]).first()
            if actor is None:
                raise CommandError(f"No account named {options['username']!r}.")
        out = Path(options["out"])
        if out.is_dir():
            raise CommandError(f"--out {out} is a directory; give a file name.")
        try:
            pack, content = control_pack_export(
                vendor=vendor, actor=actor, period_from=options["period_from"],
                period_to=options["period_to"])
        except ControlPackError as exc:
            raise CommandError(str(exc)) from None
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(content)
        result = {"pack_id": str(pack.pk), "vendor": vendor.name, "out": str(out),
                  "bytes": len(content), "files": pack.files, "kid": pack.kid,
                  "manifest_sha256": pack.manifest_sha256}
        if options["json"]:
            self.stdout.write(json.dumps(result))
        else:
            self.stdout.write(f"Control pack for {vendor.name} written to {out} "
                              f"({pack.files} files, signed with key {pack.kid}).")
