"""Demo vendors, integrations and approvals for the sandbox (wired into seed_demo by the lead).

Everything goes through the real services, so the demo's approvals are audited and obey
the same rules as anyone's: the engineer requests, governance staff approve (two of them
where the data is sensitive). Re-running is safe: vendors and integrations are found by
name, and an integration that already has requests gets no new ones.

What it makes (issue 4, "seed_demo"):

* four vendors, each with contacts, a contract, a current data-processing agreement and a
  current security review;
* one integration of each kind: a plain (not pseudonymised) OneRoster REST integration
  approved for the roster with directory fields (names, emails); a pseudonymised CSV
  delivery; a pseudonymised LTI tool whose grade passback was approved by two people; a
  plain OneRoster REST assessment integration approved (by two people) for gradebook
  reads and writes;
* one pending request for demographic data on the plain REST integration, raised by the
  demo engineer, so the approval queue has work and the two-person rule can be shown.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.governance import scopes
from apps.governance.models import ScopeRequest
from apps.governance.selectors.grant import effective_grant
from apps.governance.services import requests as request_services
from apps.vendors import services
from apps.vendors.models import (
    ContactRole,
    Contract,
    DataProcessingAgreement,
    Integration,
    IntegrationKind,
    IntegrationStatus,
    SecurityReview,
    Vendor,
    VendorContact,
)

ENGINEER = "dev.engineer"
APPROVERS = ("amira.dpo", "ben.itlead")
ORG_SCOPE = ["dist-1"]  # the demo trust; its schools are implied

OR = scopes.OR
PLAIN_REST = "Numbersense roster (REST)"
PSEUDONYMISED_CSV = "Brightpath nightly roster (CSV)"
LTI_TOOL = "Quizzical (LTI 1.3)"
ASSESSMENT_REST = "Scoremark assessments (REST gradebook)"
GRADEBOOK_SCOPES = [OR + "gradebook-core.readonly", OR + "gradebook.readonly",
                    OR + "gradebook.createput", OR + "gradebook.createpost",
                    OR + "gradebook.delete"]

VENDORS: tuple[dict[str, Any], ...] = (
    {
        "name": "Numbersense Learning",
        "website": "https://numbersense.example",
        "description": "Adaptive maths practice for years 3 to 9.",
        "domain": "numbersense.example",
        "classes": ["identifier", "directory", "demographic"],
        "fields": ["users.email"],
    },
    {
        "name": "Brightpath Reading",
        "website": "https://brightpath.example",
        "description": "Reading age assessment and library recommendations.",
        "domain": "brightpath.example",
        "classes": ["identifier", "directory"],
        "fields": [],
    },
    {
        "name": "Quizzical",
        "website": "https://quizzical.example",
        "description": "Quizzes launched from class pages, with grades sent back.",
        "domain": "quizzical.example",
        "classes": ["identifier", "directory", "assessment"],
        "fields": [],
    },
    {
        "name": "Scoremark Assessment",
        "website": "https://scoremark.example",
        "description": "Termly assessments marked online; marks go to the school gradebook.",
        "domain": "scoremark.example",
        "classes": ["identifier", "directory", "assessment"],
        "fields": [],
    },
)

INTEGRATIONS: tuple[dict[str, Any], ...] = (
    {
        "name": PLAIN_REST, "vendor": "Numbersense Learning",
        "kind": IntegrationKind.ONEROSTER_REST, "pseudonymised": False,
        "description": "Class lists with pupil and teacher names and school emails, so "
                       "teachers can find their classes and pupils can sign in.",
        "approved": [{
            "services": ["oneroster.rostering"], "scopes_": [OR + "roster.readonly"],
            "field_classes": ["identifier", "directory"], "fields": ["users.email"],
            "justification": "Pupils sign in with their school email; teachers see their "
                             "classes by name.",
        }],
        "pending": [{
            "services": ["oneroster.rostering"],
            "scopes_": [OR + "roster.readonly", OR + "roster-demographics.readonly"],
            "field_classes": ["demographic"],
            "justification": "Date of birth sets each pupil's starting level in the "
                             "adaptive engine.",
            "dpia_reference": "DPIA-2026-004",
        }],
    },
    {
        "name": PSEUDONYMISED_CSV, "vendor": "Brightpath Reading",
        "kind": IntegrationKind.ONEROSTER_CSV, "pseudonymised": True,
        "description": "Nightly bundle of classes and enrolments, pseudonymised.",
        "approved": [{
            "services": ["csv.delivery"], "field_classes": ["identifier", "directory"],
            "justification": "Reading groups are built from class enrolments; the vendor "
                             "needs no real identifiers.",
        }],
        "pending": [],
    },
    {
        "name": LTI_TOOL, "vendor": "Quizzical",
        "kind": IntegrationKind.LTI_TOOL, "pseudonymised": True,
        "description": "Launched from class pages; sends quiz scores back to the gradebook.",
        "approved": [{
            "services": ["lti.launch", "lti.nrps", "lti.ags"],
            "scopes_": [scopes.NRPS + "contextmembership.readonly", scopes.AGS + "lineitem",
                        scopes.AGS + "score"],
            "field_classes": ["identifier", "directory"], "claims": ["given_name"],
            "justification": "Teachers launch quizzes in class; scores return to the "
                             "gradebook.",
            "dpia_not_needed_reason": "Scores flow into the school's gradebook only; covered "
                                      "by the trust's assessment DPIA.",
        }],
        "pending": [],
    },
    {
        "name": ASSESSMENT_REST, "vendor": "Scoremark Assessment",
        "kind": IntegrationKind.ONEROSTER_REST, "pseudonymised": False,
        "description": "Reads class lists, writes line items and results into the "
                       "gradebook over OneRoster 1.2 REST.",
        "approved": [{
            "services": ["oneroster.rostering", "oneroster.gradebook"],
            "scopes_": [OR + "roster-core.readonly", *GRADEBOOK_SCOPES],
            "field_classes": ["identifier", "directory", "assessment"],
            "justification": "Teachers set assessments per class; marks flow back to the "
                             "school's gradebook without re-keying.",
            "dpia_not_needed_reason": "Marks flow into the school's gradebook only; covered "
                                      "by the trust's assessment DPIA.",
        }],
        "pending": [],
    },
)


def _vendor(spec: dict[str, Any], reviewer: Any) -> Vendor:
    vendor, _ = Vendor.objects.get_or_create(
        name=spec["name"],
        defaults={"website": spec["website"], "description": spec["description"]},
    )
    today = timezone.localdate()
    domain = spec["domain"]
    for role, name, local in (
        (ContactRole.PRIMARY, "Account manager", "accounts"),
        (ContactRole.DATA_PROTECTION, "Data protection officer", "dpo"),
        (ContactRole.SECURITY, "Security team", "security"),
        (ContactRole.INCIDENT, "Incident desk", "incidents"),
    ):
        VendorContact.objects.get_or_create(
            vendor=vendor, role=role, defaults={"name": name, "email": f"{local}@{domain}"})
    contract, _ = Contract.objects.get_or_create(
        vendor=vendor, reference=f"CON-{vendor.pk:03d}",
        defaults={"title": "Annual subscription", "starts_on": today - dt.timedelta(days=120),
                  "ends_on": today + dt.timedelta(days=610),
                  "renewal_on": today + dt.timedelta(days=520)},
    )
    if vendor.current_agreement() is None:
        DataProcessingAgreement.objects.create(
            vendor=vendor, contract=contract, reference=f"DPA-{vendor.pk:03d}",
            signed_on=today - dt.timedelta(days=110),
            expires_on=today + dt.timedelta(days=620),
            retention_commitment="Kept while the school subscribes; no copies outside the "
                                 "service.",
            deletion_commitment="Deleted within 30 days of the end of the subscription, with "
                                "written confirmation.",
            incident_reporting_commitment="Email and phone to the school's DPO without undue "
                                          "delay, within 24 hours.",
            incident_reporting_hours=24,
            allowed_field_classes=spec["classes"], allowed_fields=spec["fields"],
        )
    if vendor.current_security_review() is None:
        SecurityReview.objects.create(
            vendor=vendor, reviewer=reviewer, reviewed_on=today - dt.timedelta(days=60),
            expires_on=today + dt.timedelta(days=305), key_management=True,
            incident_reporting=True, retention=True, mfa=True, encryption=True,
            notes="Questionnaire and SOC 2 report reviewed.",
        )
    return vendor


def _integration(spec: dict[str, Any], vendor: Vendor, owner: Any, actor: Any) -> Integration:
    integration, _ = Integration.objects.get_or_create(
        name=spec["name"],
        defaults={"vendor": vendor, "kind": spec["kind"], "pseudonymised": spec["pseudonymised"],
                  "owner": owner, "description": spec["description"]},
    )
    if integration.status == IntegrationStatus.DRAFT:
        services.integration_activate(integration=integration, actor=actor,
                                      reason="Demo: connection tested in the sandbox")
    return integration


def _requests(spec: dict[str, Any], integration: Integration, staff: dict[str, Any]) -> None:
    if ScopeRequest.objects.filter(integration=integration).exists():
        return
    engineer = staff[ENGINEER]
    for content in spec["approved"]:
        request = request_services.scope_request_create(
            integration=integration, requested_by=engineer, org_sourced_ids=ORG_SCOPE,
            **content)
        for username in APPROVERS[: request.approvals_required]:
            request_services.scope_request_approve(
                request=request, approver=staff[username],
                reason="Demo: within the agreement's schedule of data.")
    for content in spec["pending"]:
        request_services.scope_request_create(
            integration=integration, requested_by=engineer, org_sourced_ids=ORG_SCOPE,
            **content)


@transaction.atomic
def demo_vendors_seed(*, staff: dict[str, Any]) -> dict:
    """Create (or find) the demo vendors, integrations and approvals.

    ``staff`` maps usernames to users and must hold ``dev.engineer``, ``amira.dpo`` and
    ``ben.itlead``. Returns the seed_demo JSON fragment:
    ``{"vendors": [{"name"}], "integrations": [{"name", "vendor", "kind", "client_id",
    "client_secret", "scopes", "pseudonymised"}]}`` (credentials are issued by later apps).
    """
    missing = sorted({ENGINEER, *APPROVERS} - set(staff))
    if missing:
        raise ValueError(f"demo_vendors_seed needs the demo staff {', '.join(missing)}")
    vendors = {spec["name"]: _vendor(spec, staff[APPROVERS[1]]) for spec in VENDORS}
    integrations = []
    for spec in INTEGRATIONS:
        integration = _integration(spec, vendors[spec["vendor"]], staff[APPROVERS[1]],
                                   staff[APPROVERS[1]])
        _requests(spec, integration, staff)
        integrations.append(integration)
    return {
        "vendors": [{"name": name} for name in vendors],
        "integrations": [
            {
                "name": integration.name,
                "vendor": integration.vendor.name,
                "kind": integration.kind,
                "client_id": None,
                "client_secret": None,
                "scopes": sorted(effective_grant(integration).scopes),
                "pseudonymised": integration.pseudonymised,
            }
            for integration in integrations
        ],
    }
