"""Verify an offboarding certificate (a JWS signed with the evidence key) and print its steps.

Exit 0 when the signature verifies; exit 1 saying why not.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.offboarding.verify import certificate_verify


class Command(BaseCommand):
    help = "Verify an offboarding certificate (offline with --jwks FILE, or with this hub's keys)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", help="The certificate (.jws), as downloaded from the admin.")
        parser.add_argument("--jwks", help="The evidence JWKS, as a file or an http(s) URL.")
        parser.add_argument("--json", action="store_true", help="Print the report as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["path"])
        if not path.is_file():
            raise CommandError(f"{path} does not exist.")
        report = certificate_verify(path.read_text(encoding="ascii", errors="replace").strip(),
                                    jwks=options["jwks"])
        if options["json"]:
            self.stdout.write(json.dumps({"valid": report.valid, "kid": report.kid,
                                          "error": report.error, "claims": report.claims}))
        elif report.valid:
            claims = report.claims
            self.stdout.write(f"VALID: signed by key {report.kid}. Vendor "
                              f"{claims['vendor']['name']}, closed {claims['closed_at']}.")
            for step in claims.get("steps", []):
                self.stdout.write(f"  {step['done_at']}  {step['title']}  ({step['actor']})")
        else:
            self.stdout.write(f"INVALID: {report.error}")
        if not report.valid:
            sys.exit(1)
