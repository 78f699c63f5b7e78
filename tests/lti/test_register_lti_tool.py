"""``register_lti_tool`` from the command line: what onboarding scripts rely on."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from apps.audit.models import AuditEvent, PendingAuditEvent
from apps.governance.models import ScopeRequest, ScopeRequestStatus
from apps.lti.models import ToolRegistration
from apps.vendors.models import IntegrationKind, IntegrationStatus
from tests.governance import release_world as world
from tests.lti.tool import rsa_key_pair

pytestmark = pytest.mark.django_db

AGS_SCORE = "https://purl.imsglobal.org/spec/lti-ags/scope/score"
NRPS = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"
JSON_KEYS = ["integration", "scope_request_id", "issuer", "client_id", "deployment_id",
             "auth_url", "token_url", "jwks_url"]


@pytest.fixture
def engineer(staff_user_factory):  # type: ignore[no-untyped-def]
    return staff_user_factory(username="dev.engineer", role="engineer")


@pytest.fixture
def pem_file(tmp_path):  # type: ignore[no-untyped-def]
    _, public = rsa_key_pair()
    path = tmp_path / "tool.pem"
    path.write_text(public)
    return path


def run(*args: str) -> str:
    out = StringIO()
    call_command("register_lti_tool", *args, stdout=out)
    return out.getvalue()


def test_registers_a_tool_and_prints_json(engineer, pem_file, settings):
    settings.INTERCHANGE_PUBLIC_URL = "https://hub.school.example"
    world.org("dist", type="district")
    world.org("sch1", "dist")
    world.vendor("Quizzer Ltd")

    printed = run(
        "--vendor", "Quizzer Ltd", "--name", "Quizzer", "--login-url", "https://q.example/login",
        "--redirect-uri", "https://q.example/launch,https://q.example/launch2",
        "--target-link-uri", "https://q.example/launch",
        "--public-key-file", str(pem_file),
        "--scopes", f"{AGS_SCORE},nrps:contextmembership.readonly",
        "--claims", "given_name,email", "--requested-by", "dev.engineer", "--json",
        "--dpia-reference", "DPIA-2025-07",
    )

    result = json.loads(printed)
    assert list(result) == JSON_KEYS
    registration = ToolRegistration.objects.get(client_id=result["client_id"])
    assert result["integration"] == "Quizzer"
    assert result["deployment_id"] == registration.deployments.get().deployment_id
    assert result["issuer"] == "https://hub.school.example"
    assert result["auth_url"] == "https://hub.school.example/lti/auth"
    assert result["token_url"] == "https://hub.school.example/lti/token"
    assert result["jwks_url"] == "https://hub.school.example/lti/jwks"
    assert registration.redirect_uris == ["https://q.example/launch",
                                          "https://q.example/launch2"]
    assert registration.public_key_kid
    integration = registration.integration
    assert (integration.kind, integration.status) == (IntegrationKind.LTI_TOOL,
                                                     IntegrationStatus.DRAFT)
    request = ScopeRequest.objects.get(pk=result["scope_request_id"])
    assert request.status == ScopeRequestStatus.PENDING
    assert request.integration == integration
    assert set(request.services) == {"lti.launch", "lti.deep_linking", "lti.nrps", "lti.ags"}
    assert set(request.scopes) == {AGS_SCORE, NRPS}
    assert set(request.claims) == {"given_name", "email"}
    assert request.org_sourced_ids == ["dist"]
    assert request.requested_by == engineer
    actions = set(AuditEvent.objects.values_list("action", flat=True)) | set(
        PendingAuditEvent.objects.values_list("action", flat=True))
    assert {"lti.registration_created", "governance.scope_request_created"} <= actions


def test_two_registrations_get_different_generated_ids(engineer, pem_file):
    world.vendor("V")
    common = ["--vendor", "V", "--login-url", "https://q.example/login",
              "--redirect-uri", "https://q.example/launch", "--target-link-uri",
              "https://q.example/launch", "--public-key-file", str(pem_file),
              "--requested-by", "dev.engineer", "--json", "--orgs", "dist"]
    a = json.loads(run("--name", "A", *common))
    b = json.loads(run("--name", "B", *common))
    assert a["client_id"] != b["client_id"]
    assert a["deployment_id"] != b["deployment_id"]


def test_a_jwks_url_registration(engineer):
    world.vendor("V")
    result = json.loads(run(
        "--vendor", "V", "--name", "J", "--login-url", "https://q.example/login",
        "--redirect-uri", "https://q.example/launch", "--target-link-uri",
        "https://q.example/launch", "--jwks-url", "https://q.example/jwks",
        "--requested-by", "dev.engineer", "--json", "--orgs", "dist",
    ))
    registration = ToolRegistration.objects.get(client_id=result["client_id"])
    assert (registration.jwks_url, registration.public_key_pem) == ("https://q.example/jwks", "")


@pytest.mark.parametrize("bad, message", [
    (["--vendor", "Nobody"], "No vendor"),
    (["--claims", "shoe_size"], "Unknown"),
    (["--scopes", "ags:score"], "DPIA"),
    (["--redirect-uri", "https://q.example/launch#frag"], "without a fragment"),
])
def test_refusals_leave_nothing_behind(engineer, pem_file, bad, message):
    world.vendor("V")
    args = {"--vendor": "V", "--name": "X", "--login-url": "https://q.example/login",
            "--redirect-uri": "https://q.example/launch",
            "--target-link-uri": "https://q.example/launch",
            "--public-key-file": str(pem_file), "--requested-by": "dev.engineer",
            "--orgs": "dist"}
    for i in range(0, len(bad), 2):
        args[bad[i]] = bad[i + 1]
    with pytest.raises(CommandError, match=message):
        run(*[item for pair in args.items() for item in pair])
    assert not ToolRegistration.objects.exists()
    assert not ScopeRequest.objects.exists()


def test_outside_the_sandbox_urls_must_be_https(engineer, pem_file, settings):
    settings.INTERCHANGE_ENVIRONMENT = "production"
    world.vendor("V")
    with pytest.raises(CommandError, match="https"):
        run("--vendor", "V", "--name", "X", "--login-url", "http://q.example/login",
            "--redirect-uri", "https://q.example/launch", "--target-link-uri",
            "https://q.example/launch", "--public-key-file", str(pem_file),
            "--requested-by", "dev.engineer", "--orgs", "dist")
