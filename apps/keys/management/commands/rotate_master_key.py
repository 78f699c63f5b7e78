"""Re-wrap every data key and signing private key under the current master key.

Operator flow (staging, production):

1. Generate a key: ``python -c "from apps.keys.master import generate_key; print(generate_key())"``.
2. Deploy with the NEW key as ``INTERCHANGE_MASTER_KEY`` and the OLD key as
   ``INTERCHANGE_MASTER_KEY_PREVIOUS`` (both readable: new data uses the new key).
3. Run ``python manage.py rotate_master_key``. Safe to re-run; it resumes.
4. Deploy again without ``INTERCHANGE_MASTER_KEY_PREVIOUS``, and destroy the old key.

Sandbox: ``--generate`` does all of it on var/master.key, keeping the old key as
var/master.key.previous until every row is re-wrapped.
"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from apps.keys import services
from apps.keys.keyring import KeyringError


class Command(BaseCommand):
    help = __doc__

    def create_parser(self, prog_name, subcommand, **kwargs):  # type: ignore[no-untyped-def]
        from argparse import RawDescriptionHelpFormatter

        kwargs["formatter_class"] = RawDescriptionHelpFormatter
        return super().create_parser(prog_name, subcommand, **kwargs)

    def add_arguments(self, parser) -> None:  # type: ignore[no-untyped-def]
        parser.add_argument(
            "--generate",
            action="store_true",
            help="Sandbox only: generate a new var/master.key and rotate to it in one step.",
        )
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")
        parser.add_argument("--batch-size", type=int, default=services.REWRAP_BATCH_SIZE)

    def handle(self, *args, **options) -> None:  # type: ignore[no-untyped-def]
        try:
            if options["generate"]:
                result = services.master_key_generate_and_rotate(batch_size=options["batch_size"])
            else:
                result = services.master_key_rotate(batch_size=options["batch_size"])
        except KeyringError as exc:
            raise CommandError(str(exc)) from exc
        if options["json"]:
            self.stdout.write(json.dumps(result.as_dict(), sort_keys=True))
            return
        previous = ", ".join(result.previous_master_key_ids) or "none"
        self.stdout.write(
            self.style.SUCCESS(
                f"Re-wrapped {result.data_keys_rewrapped} data keys, "
                f"{result.signing_keys_rewrapped} signing keys and "
                f"{sum(result.other_secrets_rewrapped.values())} other secrets under master key "
                f"{result.new_master_key_id} (from: {previous})."
            )
        )
        if not options["generate"]:
            self.stdout.write("Now remove INTERCHANGE_MASTER_KEY_PREVIOUS from the configuration.")
