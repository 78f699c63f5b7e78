"""Verify a control pack: the signature over its manifest, then every file's SHA-256.

Exit 0 when valid; exit 1 naming the signature or each file that fails.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.offboarding.verify import control_pack_verify


class Command(BaseCommand):
    help = "Verify a signed control pack (offline with --jwks FILE, or this deployment's keys)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", help="The pack (zip).")
        parser.add_argument("--jwks", help="The evidence JWKS, as a file or an http(s) URL.")
        parser.add_argument("--json", action="store_true", help="Print the report as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["path"])
        if not path.is_file():
            raise CommandError(f"{path} does not exist.")
        try:
            report = control_pack_verify(path, jwks=options["jwks"])
        except (OSError, ValueError) as exc:
            raise CommandError(f"Cannot read the key set: {exc}") from None
        if options["json"]:
            self.stdout.write(json.dumps(report.as_dict(), default=str))
        elif report.valid:
            self.stdout.write(
                f"VALID: signature by key {report.kid}; {len(report.files)} files match the "
                "manifest.")
        else:
            self.stdout.write("INVALID")
            for error in report.errors:
                self.stdout.write(f"  {error}")
        if not report.valid:
            sys.exit(1)
