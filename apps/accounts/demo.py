"""Demo staff personas for the sandbox: one account per role, two for governance."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction

from apps.accounts.roles import AUDITOR, ENGINEER, GOVERNANCE, SAFEGUARDING, role_for_key


@dataclass(frozen=True)
class Persona:
    username: str
    first_name: str
    last_name: str
    role: str


PERSONAS: tuple[Persona, ...] = (
    Persona("amira.dpo", "Amira", "Khan", GOVERNANCE),
    Persona("ben.itlead", "Ben", "Okafor", GOVERNANCE),
    Persona("chloe.dsl", "Chloe", "Martin", SAFEGUARDING),
    Persona("dev.engineer", "Dev", "Patel", ENGINEER),
    Persona("erin.auditor", "Erin", "Walsh", AUDITOR),
)


def _demo_password() -> str:
    # Readable enough to type from the terminal, long enough for the password validators.
    return "-".join(secrets.token_hex(3) for _ in range(4))


@transaction.atomic
def demo_staff_seed() -> list[dict[str, str]]:
    """Create or refresh the personas; every run issues fresh passwords (printed once)."""
    user_model = get_user_model()
    created = []
    for persona in PERSONAS:
        user, _ = user_model.objects.get_or_create(username=persona.username)
        user.first_name, user.last_name = persona.first_name, persona.last_name
        user.email = f"{persona.username}@sandbox.interchange.invalid"
        user.is_staff, user.is_active, user.is_superuser = True, True, False
        password = _demo_password()
        user.set_password(password)
        user.save()
        user.groups.set([Group.objects.get(name=role_for_key(persona.role).group_name)])
        created.append({"username": persona.username, "password": password, "role": persona.role})
    return created
