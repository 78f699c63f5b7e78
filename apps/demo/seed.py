"""Composes each app's demo seeding into one sandbox set-up.

Every step goes through the same services staff and workers use (imports, approvals,
exclusions), so the demo shows real records, audited like real decisions, and
re-running it is safe: the roster import of an unchanged district is a no-op.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model

from apps.accounts.demo import demo_staff_seed
from apps.delivery.demo import demo_delivery_seed
from apps.governance.demo import demo_exclusions_seed
from apps.monitoring.demo import demo_monitoring_seed
from apps.offboarding.demo import demo_offboarding_seed
from apps.oneroster_api.gradebook import BASE_PATH as GRADEBOOK_BASE_PATH
from apps.oneroster_api.models import OneRosterClient
from apps.oneroster_api.services import oauth_client_issue, oauth_client_secret_rotate
from apps.roster.models import ImportRun, ImportState
from apps.roster.services import import_run_approve, roster_import_run
from apps.vendors.demo import demo_vendors_seed
from apps.vendors.models import Integration, IntegrationKind

ERROR_NOT_SANDBOX = (
    "seed_demo only runs in the sandbox (INTERCHANGE_ENVIRONMENT is {environment!r}); "
    "it creates known demo accounts and synthetic pupils."
)
ERROR_ROSTER_NOT_APPLIED = "The demo roster import ended {state}: {detail}"
DEMO_SOURCE = "demo-sis"
DEMO_SEED = 2026
DEMO_APPROVER = "amira.dpo"  # governance persona who approves a held (resized) demo district
DEMO_SAFEGUARDING_OFFICER = "chloe.dsl"


class NotSandboxError(RuntimeError):
    pass


def demo_seed(*, students: int) -> dict[str, Any]:
    """Everything `make demo` needs. The result's keys are stable; later apps extend the lists."""
    if settings.INTERCHANGE_ENVIRONMENT != "sandbox":
        environment = settings.INTERCHANGE_ENVIRONMENT
        raise NotSandboxError(ERROR_NOT_SANDBOX.format(environment=environment))
    result: dict[str, Any] = {"staff": [], "vendors": [], "integrations": [], "exclusions": []}
    result["staff"] = demo_staff_seed()
    result["roster"] = demo_roster_seed(students=students)
    usernames = [person["username"] for person in result["staff"]]
    staff = {user.username: user
             for user in get_user_model().objects.filter(username__in=usernames)}
    result.update(demo_vendors_seed(staff=staff))
    names = [row["name"] for row in result["integrations"]]
    integrations = {i.name: i for i in Integration.objects.filter(name__in=names)}
    _demo_credentials(result["integrations"], integrations, issuer=staff[DEMO_APPROVER])
    result["exclusions"] = demo_exclusions_seed(
        integrations=integrations, officer=staff[DEMO_SAFEGUARDING_OFFICER]
    )
    result["deliveries"] = demo_delivery_seed(integrations=integrations,
                                              actor=staff[DEMO_APPROVER])
    # a retired vendor offboarded end to end, for the auditor to export and verify
    result["offboarding"] = demo_offboarding_seed(actor=staff[DEMO_APPROVER])
    # last: four weeks of access history, telemetry and the rules' first alerts
    result["monitoring"] = demo_monitoring_seed(integrations=integrations, students=students)
    return result


def _demo_credentials(  # type: ignore[no-untyped-def]
    rows: list[dict], integrations: dict[str, Integration], *, issuer
) -> None:
    """Issue (or, on a re-run, rotate) the OAuth clients of the approved REST integrations,
    so the printed secret always works; the previous one lapses after the usual overlap."""
    for row in rows:
        integration = integrations[row["name"]]
        if integration.kind != IntegrationKind.ONEROSTER_REST or not row["scopes"]:
            continue
        if OneRosterClient.objects.filter(integration=integration).exists():
            issued = oauth_client_secret_rotate(integration=integration, actor=issuer)
        else:
            issued = oauth_client_issue(integration=integration, actor=issuer)
        row["client_id"], row["client_secret"] = issued.client_id, issued.client_secret
        row["token_url"], row["base_url"] = issued.token_url, issued.base_url
        if any("/scope/gradebook" in scope for scope in row["scopes"]):
            row["gradebook_url"] = settings.INTERCHANGE_PUBLIC_URL + GRADEBOOK_BASE_PATH


def demo_roster_seed(*, students: int) -> dict[str, Any]:
    """Generate the synthetic district and import it through the real pipeline."""
    from benchmarks.generate_district import generate_district

    demo_dir = Path(settings.VAR_DIR) / "demo"
    demo_dir.mkdir(parents=True, exist_ok=True)
    path = demo_dir / f"district-{students}-{DEMO_SEED}.zip"
    if not path.exists():
        generate_district(path, students=students, seed=DEMO_SEED)
    run = roster_import_run(path=path, source=DEMO_SOURCE)
    if run.state == ImportState.HELD:
        # A resized demo district trips the quality gates, as it should; approve it the way a
        # governance officer would, so the demo's own history shows the hold and the decision.
        approver = get_user_model().objects.get(username=DEMO_APPROVER)
        run = import_run_approve(
            run=run, actor=approver, reason="seed_demo: the demo district was resized"
        )
    if run.state not in (ImportState.APPLIED, ImportState.NO_CHANGES):
        raise RuntimeError(ERROR_ROSTER_NOT_APPLIED.format(state=run.state, detail=_detail(run)))
    version = run.version.number if run.version_id else None
    return {"source": DEMO_SOURCE, "students": students, "import_state": run.state,
            "version": version}


def _detail(run: ImportRun) -> str:
    first = run.errors.order_by("id").first()
    if first is None:
        return run.message or f"see import run {run.pk}"
    return f"{first.file}:{first.line} {first.code} {first.message}"
