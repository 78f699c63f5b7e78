"""Composes each app's demo seeding into one sandbox set-up."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from apps.accounts.demo import demo_staff_seed

ERROR_NOT_SANDBOX = (
    "seed_demo only runs in the sandbox (INTERCHANGE_ENVIRONMENT is {environment!r}); "
    "it creates known demo accounts and synthetic pupils."
)


class NotSandboxError(RuntimeError):
    pass


def demo_seed(*, students: int) -> dict[str, Any]:
    """Everything `make demo` needs. The result's keys are stable; later apps extend the lists."""
    if settings.INTERCHANGE_ENVIRONMENT != "sandbox":
        raise NotSandboxError(ERROR_NOT_SANDBOX.format(environment=settings.INTERCHANGE_ENVIRONMENT))
    result: dict[str, Any] = {"staff": [], "vendors": [], "integrations": [], "exclusions": []}
    result["staff"] = demo_staff_seed()
    return result
