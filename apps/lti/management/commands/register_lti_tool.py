"""``register_lti_tool``: scripted onboarding of an LTI 1.3 tool.

    python manage.py register_lti_tool --vendor NAME --name NAME --login-url URL
        --redirect-uri URL[,URL...] --target-link-uri URL[,URL...]
        (--jwks-url URL | --public-key-file PEM) [--scopes URI,URI,...]
        [--claims name,email,...] [--orgs SOURCEDID,...] [--dpia-reference REF]
        [--requested-by USERNAME] [--json]

Creates the ``lti_tool`` integration (draft), its registration with a generated client id and
deployment, and its scope request (LTI launch and Deep Linking, plus the services the scopes
imply). Approval and activation still go through governance. ``--orgs`` names the orgs the
request covers; by default the current top-level orgs (districts), listed in the request so
the approver sees them. Gradebook writes (AGS ``score``, ``lineitem``) are sensitive, so
governance refuses such a request without a DPIA reference (``--dpia-reference``).
"""

from __future__ import annotations

import json
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from apps.governance import scopes as scope_catalogue
from apps.governance.services.requests import ScopeRequestRefused, scope_request_create
from apps.lti.services import RegistrationError, registration_create
from apps.roster.models import Org
from apps.vendors.models import Integration, IntegrationKind, Vendor

ERROR_NO_VENDOR = "No vendor named {name!r}."
ERROR_INTEGRATION_EXISTS = "An integration named {name!r} already exists."
ERROR_NO_USER = "No user named {name!r}."
ERROR_REQUESTER = "Give --requested-by USERNAME (the member of staff raising the request)."
ERROR_KEY_FILE = "Cannot read the public key file {path}."


def _list(value: str | None) -> list[str]:
    return [item.strip() for item in (value or "").split(",") if item.strip()]


def services_for(scopes: list[str]) -> list[str]:
    services = ["lti.launch", "lti.deep_linking"]
    if any(s.startswith(scope_catalogue.NRPS) for s in scopes):
        services.append("lti.nrps")
    if any(s.startswith(scope_catalogue.AGS) for s in scopes):
        services.append("lti.ags")
    return services


def endpoints() -> dict[str, str]:
    base = settings.INTERCHANGE_PUBLIC_URL
    return {"issuer": base, "auth_url": base + "/lti/auth", "token_url": base + "/lti/token",
            "jwks_url": base + "/lti/jwks"}


class Command(BaseCommand):
    help = "Register an LTI 1.3 tool: integration, registration, deployment and scope request."

    def add_arguments(self, parser) -> None:  # type: ignore[no-untyped-def]
        parser.add_argument("--vendor", required=True)
        parser.add_argument("--name", required=True, help="Name of the new integration.")
        parser.add_argument("--login-url", required=True)
        parser.add_argument("--redirect-uri", required=True, help="Comma-separated.")
        parser.add_argument("--target-link-uri", required=True, help="Comma-separated.")
        keys = parser.add_mutually_exclusive_group(required=True)
        keys.add_argument("--jwks-url")
        keys.add_argument("--public-key-file")
        parser.add_argument("--scopes", help="Comma-separated AGS/NRPS scope URIs.")
        parser.add_argument("--claims", help="Comma-separated: name,given_name,family_name,email")
        parser.add_argument("--orgs", help="Comma-separated org sourcedIds (default: top level).")
        parser.add_argument("--dpia-reference", default="",
                            help="DPIA reference (required for sensitive scopes).")
        parser.add_argument("--requested-by", help="Username of the requester.")
        parser.add_argument("--json", action="store_true", help="Machine-readable output.")

    def handle(self, *args, **options) -> None:  # type: ignore[no-untyped-def]
        vendor = Vendor.objects.filter(name=options["vendor"]).first()
        if vendor is None:
            raise CommandError(ERROR_NO_VENDOR.format(name=options["vendor"]))
        if Integration.objects.filter(name=options["name"]).exists():
            raise CommandError(ERROR_INTEGRATION_EXISTS.format(name=options["name"]))
        if not options["requested_by"]:
            raise CommandError(ERROR_REQUESTER)
        requester = get_user_model().objects.filter(username=options["requested_by"]).first()
        if requester is None:
            raise CommandError(ERROR_NO_USER.format(name=options["requested_by"]))
        pem = ""
        if options["public_key_file"]:
            try:
                pem = Path(options["public_key_file"]).read_text(encoding="ascii")
            except (OSError, UnicodeDecodeError):
                raise CommandError(ERROR_KEY_FILE.format(path=options["public_key_file"])) from None
        scopes = [scope_catalogue.expand_scope(s) for s in _list(options["scopes"])]
        orgs = _list(options["orgs"]) or sorted(
            Org.objects.filter(valid_to_version__isnull=True, parent_sourced_id__isnull=True)
            .values_list("sourced_id", flat=True).distinct()
        )
        try:
            with transaction.atomic():
                integration = Integration.objects.create(
                    vendor=vendor, name=options["name"], kind=IntegrationKind.LTI_TOOL,
                    owner=requester,
                )
                registration = registration_create(
                    integration=integration, login_initiation_url=options["login_url"],
                    redirect_uris=_list(options["redirect_uri"]),
                    target_link_uris=_list(options["target_link_uri"]),
                    jwks_url=options["jwks_url"] or "", public_key_pem=pem, actor=requester,
                )
                request = scope_request_create(
                    integration=integration, requested_by=requester,
                    justification=f"LTI 1.3 tool {integration.name} registered by command.",
                    services=services_for(scopes), scopes_=scopes,
                    claims=_list(options["claims"]), org_sourced_ids=orgs,
                    dpia_reference=options["dpia_reference"],
                )
        except (RegistrationError, ScopeRequestRefused) as exc:
            raise CommandError(str(exc)) from None
        result = {
            "integration": integration.name,
            "scope_request_id": request.pk,
            "client_id": registration.client_id,
            "deployment_id": registration.deployments.get().deployment_id,
            **endpoints(),
        }
        order = ("integration", "scope_request_id", "issuer", "client_id", "deployment_id",
                 "auth_url", "token_url", "jwks_url")
        result = {key: result[key] for key in order}
        if options["json"]:
            self.stdout.write(json.dumps(result, indent=2))
            return
        self.stdout.write(self.style.SUCCESS(
            f"Registered {integration.name} (draft; scope request #{request.pk} awaits approval)."
        ))
        for key in order[2:]:
            self.stdout.write(f"  {key}: {result[key]}")
