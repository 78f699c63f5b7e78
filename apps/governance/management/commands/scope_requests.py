"""``scope_requests [--json] [--status S] [--integration NAME]``: list scope requests.

For operations and scripts; deciding one is ``approve_scope_request``.
"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand

from apps.governance.models import ScopeRequest, ScopeRequestStatus


def request_rows(queryset) -> list[dict]:  # type: ignore[no-untyped-def]
    """The JSON shape (issue 4): id, integration, status, scopes, fields, requested_by,
    approvals, plus what else a script needs to decide (classes, claims, orgs, expiry)."""
    rows = []
    requests = (
        queryset.select_related("integration__vendor", "requested_by")
        .prefetch_related("decisions__approver").order_by("id")
    )
    for request in requests:
        rows.append({
            "id": request.pk,
            "integration": request.integration.name,
            "vendor": request.integration.vendor.name,
            "status": request.status,
            "services": request.services,
            "scopes": request.scopes,
            "field_classes": request.field_classes,
            "fields": request.fields,
            "claims": request.claims,
            "org_sourced_ids": request.org_sourced_ids,
            "requested_by": request.requested_by.get_username(),
            "requested_at": request.requested_at.isoformat(),
            "approvals_required": request.approvals_required,
            "approvals": [
                {"by": d.approver.get_username(), "decision": d.decision, "reason": d.reason,
                 "at": d.decided_at.isoformat()}
                for d in request.decisions.all()
            ],
            "expires_at": request.expires_at.isoformat() if request.expires_at else None,
        })
    return rows


class Command(BaseCommand):
    help = "List scope requests (pending first in the text view)."

    def add_arguments(self, parser) -> None:  # type: ignore[no-untyped-def]
        parser.add_argument("--json", action="store_true", help="Machine-readable output.")
        parser.add_argument("--status", choices=ScopeRequestStatus.values)
        parser.add_argument("--integration", help="Only this integration (by name).")

    def handle(self, *args, **options) -> None:  # type: ignore[no-untyped-def]
        queryset = ScopeRequest.objects.all()
        if options["status"]:
            queryset = queryset.filter(status=options["status"])
        if options["integration"]:
            queryset = queryset.filter(integration__name=options["integration"])
        rows = request_rows(queryset)
        if options["json"]:
            self.stdout.write(json.dumps(rows, indent=2))
            return
        if not rows:
            self.stdout.write("No scope requests.")
            return
        rows.sort(key=lambda r: (r["status"] != "pending", r["id"]))
        for row in rows:
            approved = sum(1 for a in row["approvals"] if a["decision"] == "approve")
            data = ", ".join(row["field_classes"] + row["fields"] + row["claims"]) or "-"
            self.stdout.write(
                f"#{row['id']:<5} {row['status']:<9} {row['integration']} ({row['vendor']}): "
                f"{data}; approvals {approved}/{row['approvals_required']}; "
                f"requested by {row['requested_by']}"
            )
