"""``roster_drop_folder [--dir PATH] [--source NAME]``: import new zips in the drop folder once.

Run it from cron, or let celery beat run the ``roster.drop_folder_scan`` task.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand

from apps.roster import services


class Command(BaseCommand):
    help = "Import each new zip in INTERCHANGE_ROSTER_DROP_DIR (once per content hash)."

    def add_arguments(self, parser) -> None:  # type: ignore[no-untyped-def]
        parser.add_argument("--dir", default=None)
        parser.add_argument("--source", default=None)
        parser.add_argument("--settle-seconds", type=int, default=services.DROP_SETTLE_SECONDS)

    def handle(self, *args, **options) -> None:  # type: ignore[no-untyped-def]
        runs = services.drop_folder_scan(
            directory=options["dir"], source=options["source"],
            settle_seconds=options["settle_seconds"],
        )
        for run in runs:
            self.stdout.write(f"{run.file_name}: {run.state}")
        self.stdout.write(f"{len(runs)} file(s) imported")
