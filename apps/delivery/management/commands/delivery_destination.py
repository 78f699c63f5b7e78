"""python manage.py delivery_destination --integration NAME (--sftp HOST[:PORT] --user U
    --host-key "ssh-ed25519 AAAA..." --private-key-file PATH [--directory DIR] | --pull
    [--link-hours N] [--reusable-links]) [--every-minutes N] [--no-events] [--json]

Creates a CSV integration's destination, or (when it exists) replaces its SFTP key and
pinned host key. Keys are read from a file so they never sit in shell history; the private
key is stored wrapped by the master key. Prints the public key to install on the server.
"""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from apps.delivery import services, sftp
from apps.delivery.models import Destination, Transport
from apps.vendors.models import Integration


class Command(BaseCommand):
    help = "Create a CSV integration's destination, or replace its SFTP keys."

    def add_arguments(self, parser) -> None:  # type: ignore[no-untyped-def]
        parser.add_argument("--integration", required=True)
        kind = parser.add_mutually_exclusive_group(required=True)
        kind.add_argument("--sftp", metavar="HOST[:PORT]")
        kind.add_argument("--pull", action="store_true", help="Signed HTTPS download links.")
        parser.add_argument("--user", default="")
        parser.add_argument("--host-key", default="", help="The server's public host key line.")
        parser.add_argument("--private-key-file", default="")
        parser.add_argument("--directory", default=".")
        parser.add_argument("--link-hours", type=int, default=72)
        parser.add_argument("--reusable-links", action="store_true")
        parser.add_argument("--every-minutes", type=int, default=None)
        parser.add_argument("--no-events", action="store_true",
                            help="Do not deliver on each applied roster version.")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **options) -> None:  # type: ignore[no-untyped-def]
        try:
            integration = Integration.objects.get(name=options["integration"])
        except Integration.DoesNotExist:
            raise CommandError(f"No integration {options['integration']!r}.") from None
        private_key = ""
        if options["private_key_file"]:
            private_key = Path(options["private_key_file"]).read_text()
        host, port = "", 22
        if options["sftp"]:
            host, _, port_text = options["sftp"].partition(":")
            port = int(port_text or 22)
        try:
            destination = Destination.objects.filter(integration=integration).first()
            if destination is None:
                destination = services.destination_create(
                    integration=integration,
                    transport=Transport.SFTP if options["sftp"] else Transport.HTTPS_PULL,
                    actor=None, sftp_host=host, sftp_port=port, sftp_username=options["user"],
                    sftp_directory=options["directory"], sftp_host_key=options["host_key"],
                    sftp_private_key=private_key, link_ttl_hours=options["link_hours"],
                    link_single_use=not options["reusable_links"],
                    event_driven=not options["no_events"],
                    interval_minutes=options["every_minutes"],
                )
                action = "created"
            elif private_key:
                destination = services.destination_sftp_key_set(
                    destination=destination, private_key=private_key,
                    host_key=options["host_key"], actor=None)
                action = "keys replaced"
            else:
                raise CommandError("The destination exists; pass --private-key-file to "
                                   "replace its keys.")
        except (services.DeliveryError, sftp.SftpError) as exc:
            raise CommandError(str(exc)) from None
        report = {"destination": destination.pk, "integration": integration.name,
                  "action": action, "transport": destination.transport,
                  "public_key": destination.sftp_public_key}
        if options["json"]:
            self.stdout.write(json.dumps(report))
        else:
            self.stdout.write(f"destination {destination.pk} {action} ({destination.transport})")
            if destination.sftp_public_key:
                self.stdout.write(f"install this public key on the server: "
                                  f"{destination.sftp_public_key}")
