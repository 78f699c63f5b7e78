"""``control_pack``: the same as ``export_control_pack`` (the name the runbook uses)."""

from apps.offboarding.management.commands.export_control_pack import Command as ExportCommand


class Command(ExportCommand):
    pass
