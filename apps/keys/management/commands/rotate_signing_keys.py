"""Rotate the signing keys of one purpose: next becomes active, active retires, a new next."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from apps.keys import services
from apps.keys.models import SigningKey


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser) -> None:  # type: ignore[no-untyped-def]
        parser.add_argument("--purpose", required=True, choices=SigningKey.Purpose.values)
        parser.add_argument("--json", action="store_true", help="Print the key states as JSON.")

    def handle(self, *args, **options) -> None:  # type: ignore[no-untyped-def]
        purpose = options["purpose"]
        try:
            active = services.signing_keys_rotate(purpose=purpose)
        except services.SigningKeyError as exc:
            raise CommandError(str(exc)) from exc
        keys = list(
            SigningKey.objects.filter(purpose=purpose)
            .exclude(state=SigningKey.State.REVOKED)
            .order_by("-created_at")
            .values("kid", "state", "created_at", "activated_at", "retired_at")[:10]
        )
        if options["json"]:
            payload = {
                "purpose": purpose,
                "active": active.kid,
                "keys": [
                    {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()}
                    for row in keys
                ],
            }
            self.stdout.write(json.dumps(payload, sort_keys=True))
            return
        self.stdout.write(self.style.SUCCESS(f"Rotated {purpose} signing keys."))
        for row in keys:
            self.stdout.write(f"  {row['state']:<8} {row['kid']}")
