"""Staff roles, defined in code and applied as Django groups.

Least privilege: each role gets exactly the permissions its persona needs
(DESIGN.md, "Who uses it"). Superuser is break-glass only; nobody's daily
account is one. Later apps add their permissions here, so the question "who may
do what" is answered in one file.

Permissions are named ``app_label.codename``. A permission whose model does not
exist yet is skipped and picked up by the next ``migrate`` (``sync_roles`` runs
after every migration).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

GOVERNANCE = "governance"
SAFEGUARDING = "safeguarding"
ENGINEER = "engineer"
AUDITOR = "auditor"


@dataclass(frozen=True)
class Role:
    key: str
    group_name: str
    description: str
    permissions: tuple[str, ...]


def _view(*models: str) -> tuple[str, ...]:
    return tuple(f"{app}.view_{model}" for app, model in (m.split(".") for m in models))


# Models every staff role may look at (records, not personal data).
_BASE_RECORDS = _view("alerts.alert", "keys.signingkey") + ("monitoring.view_dashboard",)
_AUDIT_RECORDS = _view(
    "audit.auditevent", "audit.accessrecord", "audit.accesshourly", "audit.disclosure"
)
_ROSTER_RECORDS = _view(
    "roster.importrun",
    "roster.rosterversion",
    "roster.mappingruleset",
    "roster.source",
    "roster.qualitygate",
)
# Monitoring (issue 10): every role sees the dashboard (in _BASE_RECORDS); governance staff and
# engineers tune the rules and alert channels; auditors read the telemetry.
_MONITORING_RECORDS = _view(
    "monitoring.monitoringrule", "monitoring.alertchannel", "monitoring.alertnotification",
    "monitoring.rosterversiontelemetry", "monitoring.rostercount",
    "monitoring.integrationactivity",
)
_MONITORING_TUNE = (
    "monitoring.change_monitoringrule", "monitoring.add_alertchannel",
    "monitoring.change_alertchannel",
)

# Vendors and scope approvals (issue 4): governance staff keep the vendor records and decide
# requests; engineers raise requests; auditors and safeguarding officers look.
_VENDOR_MODELS = (
    "vendor", "vendorcontact", "contract", "dataprocessingagreement", "securityreview",
    "integration",
)
_VENDOR_RECORDS = _view(*(f"vendors.{model}" for model in _VENDOR_MODELS))
_VENDOR_EDIT = tuple(f"vendors.{a}_{m}" for m in _VENDOR_MODELS for a in ("add", "change"))
_APPROVAL_RECORDS = _view(
    "governance.scoperequest", "governance.scopeapproval", "governance.fieldclassification"
)
# OAuth clients of OneRoster REST integrations and their token requests (introspection
# needs view_onerosterclient).
_CREDENTIAL_RECORDS = _view(
    "oneroster_api.onerosterclient",
    "oneroster_api.clientsecret",
    "oneroster_api.tokenrequestrecord",
)
# LTI tool registrations and the links that tie portal users to roster users.
_LTI_REGISTRATION_EDIT = (
    "lti.view_toolregistration", "lti.add_toolregistration", "lti.change_toolregistration",
)

# What LTI tools did with the services: token requests (granted and refused) and AGS line items.
_LTI_SERVICE_RECORDS = _view("lti.tokenrequest", "lti.agslineitem")

# Offboarding records and their evidence, and the signed control packs exported so far.
_OFFBOARDING_RECORDS = _view(
    "offboarding.offboarding", "offboarding.offboardingstep", "offboarding.controlpack",
    "offboarding.incident",
)

# Deliveries (issue 9): destinations, runs, bundles, links and SIS sources are records;
# operating them (deliver, replay, roll back, pause, resume) is one permission.
_DELIVERY_RECORDS = _view(
    "delivery.destination", "delivery.deliveryrun", "delivery.bundle", "delivery.downloadlink",
    "delivery.sissource", "delivery.sourcepickup",
)

ROLES: tuple[Role, ...] = (
    Role(
        key=GOVERNANCE,
        group_name="Governance staff",
        description="Data protection officer, IT lead: vendors, approvals, alerts, offboarding.",
        permissions=_BASE_RECORDS
        + _MONITORING_RECORDS
        + _MONITORING_TUNE
        + _AUDIT_RECORDS
        + _ROSTER_RECORDS
        + ("alerts.change_alert", "roster.approve_held_import")
        # effective access per integration, and its "suspend now" lever
        + ("governance.view_integrationaccess", "governance.suspend_integration")
        # vendor records, and deciding scope requests
        + _VENDOR_RECORDS
        + _VENDOR_EDIT
        + _APPROVAL_RECORDS
        + (
            "governance.add_scoperequest",
            "governance.approve_scoperequest",
            "governance.add_fieldclassification",
            "governance.change_fieldclassification",
        )
        + _CREDENTIAL_RECORDS
        + ("oneroster_api.manage_credentials",)  # issue, rotate, revoke OAuth credentials
        + _LTI_REGISTRATION_EDIT
        + ("lti.view_deployment", "lti.add_deployment", "lti.change_deployment",
           "lti.view_resourcelink")
        + _LTI_SERVICE_RECORDS
        + ("accounts.view_rosterlink", "accounts.add_rosterlink", "accounts.change_rosterlink")
        # offboarding (run it, sign the certificate), control packs, a pupil's disclosures
        + _OFFBOARDING_RECORDS
        + ("offboarding.add_offboarding", "offboarding.run_offboarding",
           "offboarding.export_controlpack", "offboarding.view_disclosurehistory",
           "offboarding.add_incident", "offboarding.change_incident")
        # deliveries: see every destination, pause and resume one (a governance lever)
        + _DELIVERY_RECORDS
        + ("delivery.operate_delivery",),
    ),
    Role(
        key=SAFEGUARDING,
        group_name="Safeguarding officers",
        description="Time-bound exclusions and overrides; the only role that sees who is excluded.",
        permissions=_BASE_RECORDS
        + _view("audit.auditevent")
        + ("audit.view_restricted_details", "alerts.change_alert")
        # who is excluded and why, and the corrections applied at release: this role only
        + _view("governance.exclusion", "governance.override", "governance.integrationaccess")
        + ("governance.add_exclusion", "governance.change_exclusion")
        + ("governance.add_override", "governance.change_override")
        + _view("vendors.vendor", "vendors.integration", "governance.scoperequest"),
    ),
    Role(
        key=ENGINEER,
        group_name="Integration engineers",
        description="Load SIS data, read validation reports, configure deliveries and mappings.",
        permissions=_BASE_RECORDS
        + _MONITORING_RECORDS
        + _MONITORING_TUNE
        + _view("audit.accessrecord", "audit.accesshourly")
        + _ROSTER_RECORDS
        + _view("keys.datakey")
        + (
            "alerts.change_alert",
            "keys.change_signingkey",  # "Rotate now" in the keys admin
            "roster.add_importrun",
            "roster.add_mappingruleset",
            "roster.change_qualitygate",  # tune a gate's thresholds for a source
        )
        + _view("vendors.vendor", "vendors.integration")
        + _APPROVAL_RECORDS
        + ("governance.add_scoperequest",)
        + _CREDENTIAL_RECORDS
        + _LTI_REGISTRATION_EDIT
        + _view("lti.deployment")
        + _LTI_SERVICE_RECORDS
        # configure deliveries and SIS sources; deliver, replay, roll back, pause, resume
        + _DELIVERY_RECORDS
        + ("delivery.operate_delivery", "delivery.change_destination",
           "delivery.change_sissource"),
    ),
    Role(
        key=AUDITOR,
        group_name="Auditors",
        description="Read-only everywhere relevant, plus signed exports.",
        permissions=_BASE_RECORDS
        + _MONITORING_RECORDS
        + _AUDIT_RECORDS
        + _ROSTER_RECORDS
        + _view("keys.datakey")
        + ("audit.export_audit",)
        + _VENDOR_RECORDS
        + _APPROVAL_RECORDS
        + _view("governance.integrationaccess")  # what each integration can see, read-only
        + _CREDENTIAL_RECORDS
        + _view("lti.toolregistration", "lti.resourcelink")
        + _LTI_SERVICE_RECORDS
        + _OFFBOARDING_RECORDS
        + ("offboarding.export_controlpack",)  # signed control packs, read-only otherwise
        + _DELIVERY_RECORDS,
    ),
)

ROLES_BY_KEY = {role.key: role for role in ROLES}


def role_for_key(key: str) -> Role:
    try:
        return ROLES_BY_KEY[key]
    except KeyError:
        raise ValueError(f"unknown role {key!r}; expected one of {sorted(ROLES_BY_KEY)}") from None


def sync_roles(group_model, permission_model, roles: Iterable[Role] = ROLES) -> None:
    """Make each role's group hold exactly its permissions (idempotent).

    Runs after every migrate and every test-database flush, so it reads all permissions in
    one query rather than one per permission.
    """
    by_dotted = {
        f"{app_label}.{codename}": pk
        for pk, app_label, codename in permission_model.objects.values_list(
            "pk", "content_type__app_label", "codename"
        )
    }
    for role in roles:
        group, _ = group_model.objects.get_or_create(name=role.group_name)
        group.permissions.set(
            [by_dotted[dotted] for dotted in role.permissions if dotted in by_dotted]
        )
