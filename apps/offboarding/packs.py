"""Integration control packs: a signed zip per vendor and period that an auditor can verify offline.

The pack holds one JSON document per subject (vendor and agreements, security reviews,
integrations with their history, approved scope sets, exclusions as counts, access and
disclosure summaries, key rotations, alerts, offboarding records, audit events and the audit
chain verification), a human-readable report, and ``manifest.json`` naming every file with
its SHA-256. ``manifest.jws`` is a detached JWS (RFC 7515 appendix F, RS256) over the exact
manifest bytes, made with the active ``evidence`` key; the evidence JWKS publishes every
evidence key for good, so a pack verifies years later and after rotations.

No pupil appears in a pack: exclusions, overrides and disclosures are counts; user
sourcedIds never leave the ledger.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import logging
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.db.models import Count, Max, Min, Q, Sum
from django.template.loader import render_to_string
from django.utils import timezone

from apps.alerts.models import Alert
from apps.audit import audit
from apps.audit.models import AccessHourly, AuditEvent, Disclosure, field_classes_from_mask
from apps.audit.verify import audit_chain_verify
from apps.governance.models import Exclusion, ExclusionHit, Override, ScopeRequest
from apps.keys.files import open_encrypted
from apps.keys.models import SigningKey
from apps.keys.services import JWT_ALGORITHM, load_private_key, signing_key_active
from apps.offboarding.incidents import incident_summary
from apps.offboarding.models import ControlPack, ControlPackState, Incident, Offboarding
from apps.offboarding.services import CERTIFICATE_TYPE, audit_chain_head
from apps.offboarding.verify import MANIFEST, SIGNATURE
from apps.roster.models import ImportRun, MappingRuleSet, QualityGate
from apps.vendors.models import Integration, Vendor

log = logging.getLogger(__name__)

PACK_FORMAT = "interchange.control-pack/1"
PACK_PURPOSE = "offboarding.control_pack"
EPOCH = dt.date(1970, 1, 1)
ERROR_PERIOD = "The period starts after it ends ({start} > {end})."

REVOCATION_PROCEDURE = """\
How a data flow to a vendor is ended (Interchange offboarding):

1. The decision is recorded (by a member of governance staff, or automatically the day
   after a contract ends, with an alert). The time of the decision is kept.
2. Every integration covered is set to "offboarding". Every channel (OneRoster REST,
   CSV deliveries, LTI launches and services) reads that state through the release
   policy on its next request or run, and refuses.
3. Each channel is told to revoke what it issued: OAuth clients, secrets and tokens;
   LTI launches in flight and service tokens; delivery destinations, links and staged
   bundles (crypto-shredded). Each channel's answer (counts) is kept as evidence.
4. The vendor is asked to delete the data it received, per the data-processing
   agreement; the request date, the due date, the vendor's confirmation and its
   evidence (stored encrypted) are kept; overdue requests are chased weekly.
5. The offboarding is closed: the integrations become "offboarded", the time from the
   decision to the last successful access is measured from the access records, and a
   certificate over every step is signed with the evidence key. Any later attempt by the
   vendor is refused by every channel and raises an alert.
"""


class ControlPackError(ValueError):
    """The pack cannot be built as asked; the message says why."""


@dataclass(frozen=True)
class Period:
    start: dt.date
    end: dt.date

    @property
    def start_at(self) -> dt.datetime:
        return timezone.make_aware(dt.datetime.combine(self.start, dt.time.min))

    @property
    def end_at(self) -> dt.datetime:
        return timezone.make_aware(dt.datetime.combine(self.end + dt.timedelta(days=1),
                                                       dt.time.min))


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.date | dt.datetime) else value


def _user(user: Any) -> str | None:
    return user.get_username() if user is not None else None


# --- the documents ------------------------------------------------------------------------------


def _vendor_doc(vendor: Vendor) -> dict[str, Any]:
    return {
        "vendor": {"id": vendor.pk, "name": vendor.name, "website": vendor.website,
                   "status": vendor.status, "status_reason": vendor.status_reason,
                   "created_at": vendor.created_at},
        "contacts": [{"role": c.role, "name": c.name, "email": c.email}
                     for c in vendor.contacts.all()],
        "contracts": [
            {"reference": c.reference, "title": c.title, "starts_on": c.starts_on,
             "ends_on": c.ends_on, "renewal_on": c.renewal_on, "auto_renews": c.auto_renews}
            for c in vendor.contracts.order_by("starts_on")
        ],
        "agreements": [
            {"reference": a.reference, "contract": a.contract.reference if a.contract else None,
             "signed_on": a.signed_on, "expires_on": a.expires_on,
             "terminated_on": a.terminated_on, "current": a.is_current_on(),
             "retention_commitment": a.retention_commitment,
             "deletion_commitment": a.deletion_commitment,
             "incident_reporting_commitment": a.incident_reporting_commitment,
             "incident_reporting_hours": a.incident_reporting_hours,
             "schedule_of_data": {"field_classes": a.allowed_field_classes,
                                  "fields": a.allowed_fields}}
            for a in vendor.agreements.select_related("contract").order_by("signed_on")
        ],
    }


def _security_reviews(vendor: Vendor) -> list[dict[str, Any]]:
    return [
        {"reviewed_on": r.reviewed_on, "expires_on": r.expires_on, "outcome": r.outcome,
         "reviewer": _user(r.reviewer), "checklist": r.checklist, "current": r.is_current_on(),
         "notes": r.notes}
        for r in vendor.security_reviews.select_related("reviewer").order_by("reviewed_on")
    ]


def _integrations(integrations: list[Integration], period: Period) -> list[dict[str, Any]]:
    history = {i.pk: [] for i in integrations}
    rows = (
        Integration.history.filter(id__in=history, history_date__lt=period.end_at)
        .select_related("history_user").order_by("id", "history_date", "history_id")
    )
    for row in rows:
        history[row.id].append({
            "at": row.history_date, "change": {"+": "created", "~": "changed",
                                               "-": "deleted"}[row.history_type],
            "status": row.status, "status_reason": row.status_reason,
            "change_reason": row.history_change_reason, "by": _user(row.history_user),
        })
    return [
        {"id": i.pk, "name": i.name, "kind": i.kind, "environment": i.environment,
         "status": i.status, "status_reason": i.status_reason,
         "pseudonymised": i.pseudonymised, "owner": _user(i.owner), "created_at": i.created_at,
         "history": history[i.pk]}
        for i in integrations
    ]


def _scope_approvals(integrations: list[Integration], period: Period) -> list[dict[str, Any]]:
    requests = (
        ScopeRequest.objects.filter(integration__in=integrations, approved_at__isnull=False,
                                    approved_at__lt=period.end_at)
        .filter(Q(expires_at__gte=period.start_at))
        .select_related("integration", "requested_by", "withdrawn_by")
        .prefetch_related("decisions__approver").order_by("approved_at", "id")
    )
    return [
        {"id": r.pk, "integration": r.integration.name, "status": r.status,
         "services": r.services, "scopes": r.scopes, "field_classes": r.field_classes,
         "fields": r.fields, "claims": r.claims, "orgs": r.org_sourced_ids,
         "justification": r.justification, "dpia_reference": r.dpia_reference,
         "requested_by": _user(r.requested_by), "requested_at": r.requested_at,
         "approvals_required": r.approvals_required,
         "decisions": [{"approver": _user(d.approver), "decision": d.decision,
                        "reason": d.reason, "decided_at": d.decided_at}
                       for d in r.decisions.all()],
         "approved_at": r.approved_at, "expires_at": r.expires_at,
         "withdrawn_at": r.withdrawn_at, "withdrawn_by": _user(r.withdrawn_by)}
        for r in requests
    ]


def _exclusions(vendor: Vendor, integrations: list[Integration], period: Period) -> dict:
    """Counts only: never who, never why."""
    applying = Exclusion.objects.filter(
        Q(scope="all") | Q(vendor=vendor) | Q(integration__in=integrations),
        starts_at__lt=period.end_at, ends_at__gte=period.start_at,
    ).filter(Q(lifted_at__isnull=True) | Q(lifted_at__gte=period.start_at))
    by_scope = dict(applying.values_list("scope").annotate(n=Count("id")).order_by("scope"))
    hits = ExclusionHit.objects.filter(
        exclusion__in=applying, day__gte=period.start, day__lte=period.end
    ).aggregate(records=Sum("records"), releases=Sum("releases"))
    overrides = Override.objects.filter(starts_at__lt=period.end_at, ends_at__gte=period.start_at)
    return {
        "note": "Counts only. Who is excluded, and why, is never exported.",
        "exclusions_in_force": sum(by_scope.values()),
        "exclusions_by_scope": by_scope,
        "records_withheld": hits["records"] or 0,
        "releases_with_withholding": hits["releases"] or 0,
        "overrides_in_force": overrides.count(),
        "overrides_by_kind": dict(overrides.values_list("kind").annotate(n=Count("id"))
                                  .order_by("kind")),
    }


def _access(integrations: list[Integration], period: Period) -> list[dict[str, Any]]:
    names = {i.pk: i.name for i in integrations}
    rows = (
        AccessHourly.objects.filter(integration_id__in=names, hour__gte=period.start_at,
                                    hour__lt=period.end_at)
        .values("integration_id", "channel", "endpoint")
        .annotate(requests=Sum("requests"), errors=Sum("errors"), records=Sum("records"),
                  first_hour=Min("hour"), last_hour=Max("hour"))
        .order_by("integration_id", "channel", "endpoint")
    )
    return [{"integration": names[r.pop("integration_id")], **r} for r in rows]


DISCLOSURES_BY_MONTH_SQL = """
SELECT d.integration_id, d.channel, d.field_classes, to_char(m, 'YYYY-MM') AS month,
       count(DISTINCT d.user_sourced_id) AS users
FROM audit_disclosure d
CROSS JOIN LATERAL generate_series(
    date_trunc('month', greatest(d.first_day, %(start)s)::timestamp),
    date_trunc('month', least(d.last_day, %(end)s)::timestamp), interval '1 month') AS m
WHERE d.vendor_id = %(vendor)s AND d.last_day >= %(start)s AND d.first_day <= %(end)s
GROUP BY 1, 2, 3, 4
ORDER BY 1, 2, 3, 4
"""


def _disclosures(vendor: Vendor, integrations: list[Integration], period: Period) -> dict:
    """Distinct pupils per integration, channel, classes of data and month: counts only."""
    names = {i.pk: i.name for i in integrations}
    with connection.cursor() as cursor:
        cursor.execute(DISCLOSURES_BY_MONTH_SQL,
                       {"vendor": vendor.pk, "start": period.start, "end": period.end})
        monthly = [
            {"integration": names.get(i, str(i)), "channel": ch,
             "field_classes": field_classes_from_mask(mask), "month": month, "users": users}
            for i, ch, mask, month, users in cursor.fetchall()
        ]
    totals = (
        Disclosure.objects.filter(vendor_id=vendor.pk, last_day__gte=period.start,
                                  first_day__lte=period.end)
        .values("integration_id", "channel")
        .annotate(users=Count("user_sourced_id", distinct=True), first_day=Min("first_day"),
                  last_day=Max("last_day"))
        .order_by("integration_id", "channel")
    )
    return {
        "note": "Distinct people whose data went to the vendor; never who.",
        "totals": [{"integration": names.get(t.pop("integration_id"), "?"), **t}
                   for t in totals],
        "by_month": monthly,
    }


def _keys() -> list[dict[str, Any]]:
    return list(
        SigningKey.objects.order_by("purpose", "created_at").values(
            "kid", "purpose", "state", "algorithm", "key_size", "created_at", "activated_at",
            "retired_at", "revoked_at", "revoked_reason",
        )
    )


def _alerts(vendor: Vendor, integrations: list[Integration], period: Period) -> list[dict]:
    ids = [str(i.pk) for i in integrations]
    match = (Q(details__vendor_id=vendor.pk) | Q(details__integration_id__in=[int(i) for i in ids])
             | Q(subject__icontains=vendor.name))
    for integration in integrations:
        match |= Q(subject__icontains=integration.name)
    return list(
        Alert.objects.filter(match, first_seen_at__lt=period.end_at,
                             last_seen_at__gte=period.start_at)
        .order_by("first_seen_at")
        .values("rule", "severity", "subject", "state", "occurrences", "first_seen_at",
                "last_seen_at", "acknowledged_at", "resolved_at", "resolution")
    )


def _incidents(vendor: Vendor, period: Period) -> list[dict[str, Any]]:
    rows = (
        Incident.objects.filter(vendor=vendor, discovered_at__lt=period.end_at)
        .filter(Q(closed_at__isnull=True) | Q(closed_at__gte=period.start_at))
        .select_related("integration").order_by("discovered_at")
    )
    return [incident_summary(incident) for incident in rows]


def _offboardings(vendor: Vendor) -> list[dict[str, Any]]:
    rows = Offboarding.objects.filter(vendor=vendor).select_related(
        "opened_by", "closed_by", "integration").prefetch_related("steps__actor")
    return [
        {"id": str(o.pk), "scope": o.integration.name if o.integration else "whole vendor",
         "integration_ids": o.integration_ids, "trigger": o.trigger, "reason": o.reason,
         "status": o.status, "decision_at": o.opened_at, "decided_by": _user(o.opened_by),
         "deletion_requested_at": o.deletion_requested_at,
         "deletion_requested_to": o.deletion_requested_to, "deletion_due_on": o.deletion_due_on,
         "deletion_confirmed_at": o.deletion_confirmed_at,
         "deletion_confirmation": o.deletion_confirmation,
         "deletion_evidence_sha256": o.evidence_sha256, "chase_count": o.chase_count,
         "closed_at": o.closed_at, "closed_by": _user(o.closed_by),
         "last_successful_access_at": o.last_access_at,
         "seconds_from_decision_to_last_access": o.seconds_to_last_access,
         "steps": [{"step": s.step, "done_at": s.done_at, "actor": _user(s.actor),
                    "evidence": s.evidence} for s in o.steps.all()],
         "certificate": {"type": CERTIFICATE_TYPE, "kid": o.certificate_kid,
                         "jws": o.certificate} if o.certificate else None}
        for o in rows
    ]


def _audit_events(vendor: Vendor, integrations: list[Integration], period: Period) -> list:
    offboardings = [str(pk) for pk in Offboarding.objects.filter(vendor=vendor)
                    .values_list("pk", flat=True)]
    targets = (
        Q(target_type="vendors.vendor", target_id=str(vendor.pk))
        | Q(target_type="vendors.integration", target_id__in=[str(i.pk) for i in integrations])
        | Q(target_type="offboarding.offboarding", target_id__in=offboardings)
    )
    # Restricted details (who was excluded and why) are never exported.
    return list(
        AuditEvent.objects.filter(targets, occurred_at__gte=period.start_at,
                                  occurred_at__lt=period.end_at)
        .order_by("id")
        .values("id", "occurred_at", "actor_username", "action", "target_type", "target_id",
                "details", "hash")
    )


def _data_quality(period: Period) -> dict[str, Any]:
    runs = (
        ImportRun.objects.filter(received_at__gte=period.start_at, received_at__lt=period.end_at)
        .values("source__name", "state").annotate(runs=Count("id"))
        .order_by("source__name", "state")
    )
    rules = (
        MappingRuleSet.objects.filter(created_at__lt=period.end_at)
        .values("source__name").annotate(version=Max("version")).order_by("source__name")
    )
    gates = QualityGate.objects.select_related("source").order_by("source__name")
    return {
        "import_runs_by_state": list(runs),
        "mapping_rule_versions_in_force": list(rules),
        "quality_gates": [
            {"source": g.source.name, "enabled": g.enabled,
             "max_change_percent": str(g.max_change_percent),
             "max_delete_percent": str(g.max_delete_percent), "min_records": g.min_records,
             "hold_when_learners_double": g.hold_when_learners_double}
            for g in gates
        ],
    }


# --- assembling, signing, storing ---------------------------------------------------------------


def _json(data: Any) -> bytes:
    return (json.dumps(data, cls=DjangoJSONEncoder, indent=2, sort_keys=True, default=_iso)
            + "\n").encode("utf-8")


def _period(start: dt.date | None, end: dt.date | None) -> Period:
    period = Period(start or EPOCH, end or timezone.localdate())
    if period.start > period.end:
        raise ControlPackError(ERROR_PERIOD.format(start=period.start, end=period.end))
    return period


def sign_detached(payload: bytes) -> tuple[str, str]:
    """A detached JWS over ``payload`` with the active evidence key: (jws, kid)."""
    key = signing_key_active(purpose=SigningKey.Purpose.EVIDENCE)
    token = jwt.api_jws.encode(
        payload, load_private_key(key), algorithm=JWT_ALGORITHM,
        headers={"kid": key.kid, "typ": "JOSE", "cty": PACK_FORMAT}, is_payload_detached=True,
    )
    return token, key.kid


@dataclass(frozen=True)
class BuiltPack:
    content: bytes
    manifest: dict[str, Any]
    manifest_sha256: str
    kid: str


def control_pack_build(*, vendor: Vendor, actor: Any, period_from: dt.date | None = None,
                       period_to: dt.date | None = None) -> BuiltPack:
    """The pack's zip bytes, its manifest and the signing kid (nothing stored)."""
    period = _period(period_from, period_to)
    integrations = list(vendor.integrations.select_related("owner").order_by("pk"))
    chain = audit_chain_verify()
    documents: dict[str, Any] = {
        "vendor.json": _vendor_doc(vendor),
        "security_reviews.json": _security_reviews(vendor),
        "integrations.json": _integrations(integrations, period),
        "scope_approvals.json": _scope_approvals(integrations, period),
        "exclusions.json": _exclusions(vendor, integrations, period),
        "access.json": _access(integrations, period),
        "disclosures.json": _disclosures(vendor, integrations, period),
        "keys.json": _keys(),
        "alerts.json": _alerts(vendor, integrations, period),
        "incidents.json": _incidents(vendor, period),
        "offboarding.json": {"procedure": REVOCATION_PROCEDURE,
                             "offboardings": _offboardings(vendor)},
        "audit_events.json": _audit_events(vendor, integrations, period),
        "audit_chain.json": {"verification": chain.as_dict(), "head": audit_chain_head()},
        "data_quality.json": _data_quality(period),
    }
    generated_at = timezone.now()
    files = {name: _json(data) for name, data in documents.items()}
    html = render_to_string("offboarding/control_pack_report.html", {
        "vendor": vendor, "period": period, "generated_at": generated_at,
        "generated_by": _user(actor), "chain": chain,
        "docs": {name.replace(".", "_"): data for name, data in documents.items()},
        "environment": settings.INTERCHANGE_ENVIRONMENT,
    })
    files["report.html"] = html.encode("utf-8")
    pdf = report_pdf(html)
    if pdf is not None:
        files["report.pdf"] = pdf
    manifest = {
        "format": PACK_FORMAT,
        "issuer": settings.INTERCHANGE_PUBLIC_URL,
        "environment": settings.INTERCHANGE_ENVIRONMENT,
        "vendor": {"id": vendor.pk, "name": vendor.name},
        "period": {"from": period_from, "to": period_to},
        "generated_at": generated_at,
        "generated_by": _user(actor),
        "audit_chain_head": audit_chain_head(),
        "audit_chain_intact": chain.intact,
        "jwks": f"{settings.INTERCHANGE_PUBLIC_URL}/keys/evidence/jwks",
        "files": {name: {"sha256": hashlib.sha256(body).hexdigest(), "bytes": len(body)}
                  for name, body in sorted(files.items())},
    }
    manifest_bytes = _json(manifest)
    signature, kid = sign_detached(manifest_bytes)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(MANIFEST, manifest_bytes)
        archive.writestr(SIGNATURE, signature + "\n")
        for name, body in sorted(files.items()):
            archive.writestr(name, body)
    return BuiltPack(buffer.getvalue(), manifest, hashlib.sha256(manifest_bytes).hexdigest(), kid)


CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update"]


def report_pdf(html: str) -> bytes | None:
    """The report as a PDF, printed by headless Chromium; None where no Chromium is installed
    (the HTML report is always in the pack). The page loads nothing from the network."""
    executable = getattr(settings, "INTERCHANGE_CHROMIUM_PATH", "/usr/bin/chromium")
    if not executable or not Path(executable).exists():
        return None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True,
                                             args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.route("**/*", lambda route: route.abort())  # nothing leaves the machine
            page.set_content(html, wait_until="load")
            return page.pdf(format="A4", print_background=True,
                            margin={"top": "14mm", "bottom": "14mm", "left": "12mm",
                                    "right": "12mm"})
        finally:
            browser.close()


def packs_dir() -> Path:
    return Path(settings.MEDIA_ROOT) / "control-packs"


def control_pack_request(*, vendor: Vendor, actor: Any, period_from: dt.date | None = None,
                         period_to: dt.date | None = None) -> ControlPack:
    """Record a pack as queued and hand it to a worker (audited). A bad period is refused
    here, to the person asking, not later by the worker."""
    from apps.offboarding.tasks import control_pack_build_task

    _period(period_from, period_to)
    with transaction.atomic():
        pack = ControlPack.objects.create(vendor=vendor, period_from=period_from,
                                          period_to=period_to, created_by=actor)
        audit.record(
            actor=actor, action="offboarding.control_pack_requested", target=pack,
            details={"vendor": vendor.name, "vendor_id": vendor.pk,
                     "period_from": _iso(period_from), "period_to": _iso(period_to)},
        )
        transaction.on_commit(lambda: control_pack_build_task.delay(str(pack.pk)))
    return pack


def control_pack_complete(pack_id: Any) -> bytes | None:
    """Build, sign and store (encrypted) a queued pack, then mark it ready (audited); on any
    error mark it failed with the reason. Returns the zip bytes, or None when the pack was
    not queued (a task delivered twice builds once) or failed."""
    try:
        with transaction.atomic():
            pack = (ControlPack.objects.select_for_update(skip_locked=True, of=("self",))
                    .select_related("vendor", "created_by")
                    .filter(pk=pack_id, state=ControlPackState.QUEUED).first())
            if pack is None:
                return None
            return _complete(pack)
    except Exception as exc:  # noqa: BLE001 (recorded on the pack for the person who asked)
        log.exception("control pack %s failed", pack_id)
        reason = str(exc) if isinstance(exc, ControlPackError) else \
            f"The pack could not be built ({type(exc).__name__}); the worker log has the detail."
        ControlPack.objects.filter(pk=pack_id, state=ControlPackState.QUEUED).update(
            state=ControlPackState.FAILED, error=reason, built_at=timezone.now())
        return None


def _complete(pack: ControlPack) -> bytes:
    built = control_pack_build(vendor=pack.vendor, actor=pack.created_by,
                               period_from=pack.period_from, period_to=pack.period_to)
    content = built.content
    path = packs_dir() / f"{pack.pk}.zip.enc"
    with open_encrypted(path, purpose=PACK_PURPOSE) as writer:
        writer.write(content)
    pack.path, pack.kid, pack.size_bytes = str(path), built.kid, len(content)
    pack.files, pack.manifest_sha256 = len(built.manifest["files"]), built.manifest_sha256
    pack.state, pack.built_at = ControlPackState.READY, timezone.now()
    pack.save()
    audit.record(
        actor=pack.created_by, action="offboarding.control_pack_exported", target=pack,
        details={"vendor": pack.vendor.name, "vendor_id": pack.vendor_id, "kid": built.kid,
                 "period_from": _iso(pack.period_from), "period_to": _iso(pack.period_to),
                 "zip_sha256": hashlib.sha256(content).hexdigest(), "files": pack.files},
    )
    return content


def control_pack_export(*, vendor: Vendor, actor: Any, period_from: dt.date | None = None,
                        period_to: dt.date | None = None) -> tuple[ControlPack, bytes]:
    """Build a pack now, in this process (the command line; the admin queues one instead).
    Returns the record and the zip bytes to hand over."""
    _period(period_from, period_to)
    pack = ControlPack.objects.create(vendor=vendor, period_from=period_from,
                                      period_to=period_to, created_by=actor)
    content = control_pack_complete(pack.pk)
    pack.refresh_from_db()
    if content is None:
        raise ControlPackError(pack.error)
    return pack, content


def control_pack_read(pack: ControlPack) -> bytes:
    """The stored pack, decrypted (for a download)."""
    from apps.keys.files import open_decrypted

    with open_decrypted(pack.path, purpose=PACK_PURPOSE) as handle:
        return handle.read()
