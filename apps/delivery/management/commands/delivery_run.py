"""python manage.py delivery_run --integration NAME [--bulk] [--json]: the same as ``deliver``."""

from apps.delivery.management.commands.deliver import Command  # noqa: F401
