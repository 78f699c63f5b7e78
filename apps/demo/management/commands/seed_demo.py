"""Load the sandbox's demo personas and data, and say how to log in."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from apps.demo.seed import NotSandboxError, demo_seed


class Command(BaseCommand):
    help = "Sandbox only: create demo staff for each role and demo data; prints the logins."

    def add_arguments(self, parser) -> None:  # type: ignore[no-untyped-def]
        parser.add_argument("--students", type=int, default=1200,
                            help="size of the synthetic district (default 1200)")
        parser.add_argument("--json", action="store_true", help="print what was created as JSON")

    def handle(self, *args, **options) -> None:  # type: ignore[no-untyped-def]
        if options["students"] < 1:
            raise CommandError("--students must be at least 1")
        try:
            result = demo_seed(students=options["students"])
        except NotSandboxError as exc:
            raise CommandError(str(exc)) from exc
        if options["json"]:
            self.stdout.write(json.dumps(result, indent=2))
            return
        self.stdout.write(self.style.SUCCESS("Demo data loaded. Log in at /admin/ as:"))
        for person in result["staff"]:
            role, username, password = person["role"], person["username"], person["password"]
            self.stdout.write(f"  {role:<13} {username:<14} {password}")
        self.stdout.write("Passwords are new on every run of seed_demo.")
        clients = [row for row in result["integrations"] if row.get("client_secret")]
        if clients:
            self.stdout.write(self.style.SUCCESS("OneRoster REST clients (secrets shown once):"))
        for row in clients:
            self.stdout.write(f"  {row['name']}\n    client_id     {row['client_id']}\n"
                              f"    client_secret {row['client_secret']}\n"
                              f"    token URL     {row['token_url']}\n"
                              f"    base URL      {row['base_url']}")
            if row.get("gradebook_url"):
                self.stdout.write(f"    gradebook URL {row['gradebook_url']}")
        for row in result["exclusions"]:
            where = row["integration"] or "all vendors"
            self.stdout.write(f"Demo exclusion: {row['user_sourced_id']} from {where} "
                              f"until {row['ends']}")
