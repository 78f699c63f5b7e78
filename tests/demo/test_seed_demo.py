"""seed_demo, as `make demo` and a curious IT lead run it."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

pytestmark = pytest.mark.django_db

SMALL_DISTRICT = ("--students", "60")


@pytest.fixture(autouse=True)
def _demo_files_in_tmp(settings, tmp_path):  # type: ignore[no-untyped-def]
    settings.VAR_DIR = tmp_path


def run_seed(*args: str) -> dict:
    out = StringIO()
    call_command("seed_demo", "--json", *(args or SMALL_DISTRICT), stdout=out)
    return json.loads(out.getvalue())


def test_json_output_has_the_agreed_shape():
    result = run_seed("--students", "60")

    assert set(result) >= {"staff", "vendors", "integrations", "exclusions"}
    for person in result["staff"]:
        assert set(person) == {"username", "password", "role"}
        assert person["role"] in {"governance", "safeguarding", "engineer", "auditor"}
    assert all(set(vendor) >= {"name"} for vendor in result["vendors"])


def test_there_is_a_persona_per_role_and_two_governance_staff_for_two_person_approvals():
    roles = [person["role"] for person in run_seed()["staff"]]

    assert roles.count("governance") >= 2
    assert {"safeguarding", "engineer", "auditor"} <= set(roles)


def test_printed_passwords_log_in_and_nobody_is_a_superuser():
    from django.contrib.auth import get_user_model

    for person in run_seed()["staff"]:
        user = get_user_model().objects.get(username=person["username"])
        assert user.check_password(person["password"])
        assert user.is_staff and not user.is_superuser


def test_running_it_twice_refreshes_the_personas_instead_of_duplicating_them():
    from django.contrib.auth import get_user_model

    first = run_seed()
    second = run_seed()

    assert get_user_model().objects.count() == len(second["staff"])
    assert first["staff"][0]["password"] != second["staff"][0]["password"]


def test_the_demo_district_is_imported_through_the_real_pipeline_and_replays_as_a_no_op():
    from apps.roster.models import Role

    first = run_seed()
    assert first["roster"]["import_state"] == "applied"
    students = Role.objects.filter(valid_to_version__isnull=True, role="student")
    assert students.values("user_sourced_id").distinct().count() == 60

    again = run_seed()
    assert again["roster"]["import_state"] == "no_changes"


def test_the_demo_has_a_vendor_integration_of_each_kind_and_two_exclusions():
    result = run_seed()

    kinds = {row["kind"] for row in result["integrations"]}
    assert kinds == {"oneroster_rest", "oneroster_csv", "lti_tool"}
    assert {row["pseudonymised"] for row in result["integrations"]} == {True, False}
    plain_rest = next(row for row in result["integrations"]
                      if row["kind"] == "oneroster_rest" and not row["pseudonymised"])
    scopes_by_exclusion = {row["integration"] for row in result["exclusions"]}
    assert scopes_by_exclusion == {plain_rest["name"], None}
    for row in result["exclusions"]:
        assert set(row) == {"user_sourced_id", "integration", "ends"}


def test_the_printed_rest_credentials_get_a_token(client):
    result = run_seed()
    rest = [row for row in result["integrations"] if row["client_secret"]]
    assert rest, "the approved OneRoster REST integration has credentials"

    for row in rest:
        response = client.post("/oauth/token", {
            "grant_type": "client_credentials",
            "client_id": row["client_id"], "client_secret": row["client_secret"],
        })
        assert response.status_code == 200, response.content
        assert response.json()["token_type"].lower() == "bearer"


def test_the_demo_assessment_vendor_writes_grades_with_its_printed_credentials(client):
    from apps.governance.models import ScopeApproval
    from apps.roster.models import Enrollment, LineItem
    from apps.vendors.demo import ASSESSMENT_REST, GRADEBOOK_SCOPES

    result = run_seed()
    row = next(r for r in result["integrations"] if r["name"] == ASSESSMENT_REST)
    assert row["kind"] == "oneroster_rest" and row["client_secret"]
    assert set(GRADEBOOK_SCOPES) <= set(row["scopes"])
    assert row["gradebook_url"].endswith("/ims/oneroster/gradebook/v1p2")
    # gradebook writes are sensitive: two people approved them
    assert ScopeApproval.objects.filter(request__integration__name=ASSESSMENT_REST).count() == 2

    token = client.post("/oauth/token", {
        "grant_type": "client_credentials", "client_id": row["client_id"],
        "client_secret": row["client_secret"],
    }).json()["access_token"]
    excluded = {e["user_sourced_id"] for e in result["exclusions"]}
    item = LineItem.objects.filter(valid_to_version__isnull=True).order_by("sourced_id").first()
    pupil = (Enrollment.objects.filter(valid_to_version__isnull=True, role="student",
                                       class_sourced_id=item.class_sourced_id)
             .exclude(user_sourced_id__in=excluded).order_by("user_sourced_id").first())
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    written = client.put(
        "/ims/oneroster/gradebook/v1p2/results/demo-mark-1",
        json.dumps({"result": {"lineItem": {"sourcedId": item.sourced_id},
                               "student": {"sourcedId": pupil.user_sourced_id},
                               "scoreStatus": "fully graded", "score": 42,
                               "scoreDate": "2026-01-15"}}),
        content_type="application/json", **auth,
    )
    assert written.status_code == 201, written.content
    read = client.get("/ims/oneroster/gradebook/v1p2/results/demo-mark-1", **auth)
    assert read.json()["result"]["score"] == 42


def test_it_refuses_to_run_outside_the_sandbox(settings):
    settings.INTERCHANGE_ENVIRONMENT = "production"

    with pytest.raises(CommandError, match="only runs in the sandbox"):
        call_command("seed_demo")
