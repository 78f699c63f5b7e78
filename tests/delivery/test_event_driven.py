"""Event-driven deliveries over real imports: the roster outbox, deltas, coalescing, order,
exclusions in deltas, rollback, and the bundle read back by the hub's own ingest."""

from __future__ import annotations

import csv
import datetime as dt
import io
import zipfile
from pathlib import Path

import pytest
from django.utils import timezone

from apps.delivery import services, tasks
from apps.delivery.models import DeliveryRun, RunState, Transport
from apps.roster import services as roster_services
from apps.roster.models import RosterOutbox
from apps.roster.selectors import version_latest_number
from apps.vendors.models import IntegrationKind
from tests.governance import release_world as world
from tests.roster.builders import small_district, write_feed

pytestmark = pytest.mark.django_db


@pytest.fixture
def feed(tmp_path):  # type: ignore[no-untyped-def]
    counter = iter(range(1000))

    def apply(files: dict, mode: str = "bulk"):  # type: ignore[no-untyped-def]
        path = write_feed(tmp_path / f"feed{next(counter)}.zip", files, mode=mode)
        run = roster_services.roster_import_run(path=path, source="sis")
        assert run.state == "applied", (run.state, run.message)
        return run

    return apply


@pytest.fixture
def destination(db, feed, running_sshd, operator):  # type: ignore[no-untyped-def]
    feed(small_district(students=3))
    integration = world.integration(kind=IntegrationKind.ONEROSTER_CSV, name="event-csv")
    world.approve(integration, orgs=("dist",), services=("csv.delivery",))
    return services.destination_create(
        integration=integration, transport=Transport.SFTP, actor=operator,
        sftp_host="127.0.0.1", sftp_port=running_sshd.port, sftp_username=running_sshd.user,
        sftp_directory=str(running_sshd.folder(f"event{integration.pk}")),
        sftp_host_key=running_sshd.host_key_line, sftp_private_key=running_sshd.client_private,
    )


def files_of(destination) -> dict[str, dict[str, list[dict]]]:  # type: ignore[no-untyped-def]
    out = {}
    for path in sorted(Path(destination.sftp_directory).iterdir()):
        with zipfile.ZipFile(path) as archive:
            out[path.name] = {
                name.removesuffix(".csv"): list(csv.DictReader(io.StringIO(
                    archive.read(name).decode())))
                for name in archive.namelist()
            }
    return out


def relay() -> None:
    tasks.outbox_relay.delay()  # eager: the relay and the drains run in process


def test_an_applied_version_reaches_the_destination_through_the_outbox_once(destination):
    relay()

    [(name, bundle)] = files_of(destination).items()
    assert name == f"oneroster_bulk_v{version_latest_number()}.zip"
    assert {r["sourcedId"] for r in bundle["users"]} == {"t1", "s1", "s2", "s3"}
    assert not RosterOutbox.objects.filter(processed_at__isnull=True).exists()

    relay()  # nothing new: consumed rows are not read again
    assert DeliveryRun.objects.filter(destination=destination).count() == 1


def test_a_delta_carries_the_change_and_tobedeleted_for_a_removed_pupil(destination, feed):
    relay()
    base = version_latest_number()
    changed = small_district(students=3)
    changed["users"][1]["givenName"] = "Renamed"
    for entity in ("users", "roles", "enrollments", "demographics"):
        changed[entity] = [r for r in changed[entity]
                           if "s3" not in (r.get("sourcedId"), r.get("userSourcedId"))]
    feed(changed)

    relay()

    delta = files_of(destination)[f"oneroster_delta_from_v{base}_v{base + 1}.zip"]
    users = {r["sourcedId"]: r for r in delta["users"]}
    assert users["s1"]["status"] == "active" and users["s1"]["givenName"] == "Renamed"
    assert users["s3"]["status"] == "tobedeleted" and users["s3"]["givenName"] == ""
    assert "t1" not in users  # unchanged rows are not repeated
    enrollments = {r["sourcedId"]: r for r in delta["enrollments"]}
    assert enrollments["e-s3"]["status"] == "tobedeleted"
    assert enrollments["e-s3"]["userSourcedId"] == ""  # no reference to the deleted pupil
    manifest = {r["propertyName"]: r["value"] for r in delta["manifest"]}
    assert manifest["file.users"] == "delta" and manifest["file.orgs"] == "absent"


def test_a_newly_excluded_pupil_is_tobedeleted_in_the_next_delta(destination, feed,
                                                                  staff_user_factory):
    from apps.governance.services.exclusions import exclusion_create

    relay()
    base = version_latest_number()
    officer = staff_user_factory(username="officer.dsl", role="safeguarding")
    exclusion_create(user_sourced_id="s2", scope="all", reason_code="child_protection",
                     ends_at=timezone.now() + dt.timedelta(days=30), actor=officer, note="x")
    changed = small_district(students=3)
    changed["users"][1]["givenName"] = "Renamed"  # some unrelated change makes a version
    feed(changed)

    relay()

    delta = files_of(destination)[f"oneroster_delta_from_v{base}_v{base + 1}.zip"]
    users = {r["sourcedId"]: r for r in delta["users"]}
    assert users["s2"]["status"] == "tobedeleted"
    assert users["s2"]["givenName"] == users["s2"]["username"] == ""
    enrollments = {r["sourcedId"]: r for r in delta["enrollments"]}
    assert enrollments["e-s2"]["status"] == "tobedeleted"
    assert all(r["userSourcedId"] != "s2" for r in delta["enrollments"])
    assert all(r["userSourcedId"] != "s2" for r in delta.get("roles", []))


def test_a_destination_far_behind_gets_one_coalesced_delivery(destination, feed, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    for n in range(3):
        changed = small_district(students=3)
        changed["users"][1]["givenName"] = f"Name{n}"
        feed(changed)
    assert RosterOutbox.objects.filter(processed_at__isnull=True).count() == 4

    relay()

    [(name, _)] = files_of(destination).items()
    assert name == f"oneroster_bulk_v{version_latest_number()}.zip"
    assert DeliveryRun.objects.filter(destination=destination).count() == 1


def test_runs_requested_out_of_order_are_delivered_in_version_order_and_never_backwards(
    destination, feed
):
    first = version_latest_number()
    changed = small_district(students=3)
    changed["users"][1]["givenName"] = "Later"
    feed(changed)
    later = version_latest_number()
    newer, _ = services.delivery_run_enqueue(destination=destination, version=later,
                                             force_bulk=True)
    older, _ = services.delivery_run_enqueue(destination=destination, version=first)

    services.destination_drain(destination=destination)

    older.refresh_from_db()
    newer.refresh_from_db()
    assert older.state == RunState.DELIVERED and older.version_to == later
    assert newer.state == RunState.DELIVERED
    destination.refresh_from_db()
    assert destination.last_delivered_version == later


def test_rolling_back_resends_the_known_good_bulk_and_resumes_deltas_from_it(
    destination, feed, operator
):
    relay()
    good = version_latest_number()
    bad = small_district(students=3)
    bad["users"][1]["givenName"] = "Broken"
    feed(bad)
    relay()

    run = services.destination_rollback(destination=destination, to_version=good,
                                        actor=operator)
    done = services.delivery_run_execute(run=run).run

    assert done.state == RunState.DELIVERED and done.mode == "bulk" and done.version_to == good
    destination.refresh_from_db()
    assert destination.last_delivered_version == good
    bulk = files_of(destination)[f"oneroster_bulk_v{good}.zip"]
    assert "Broken" not in str(bulk)


def test_a_bundle_is_a_valid_feed_for_the_hubs_own_ingest(destination, tmp_path):
    relay()
    [path] = Path(destination.sftp_directory).iterdir()

    run = roster_services.roster_import_run(path=path, source="roundtrip", dry_run=True)

    assert run.state in ("applied", "no_changes"), (run.state, run.message,
                                                    list(run.errors.values("code", "message")))


def test_a_change_of_release_policy_makes_the_next_delivery_a_bulk(destination, feed):
    relay()
    world.approve(destination.integration, orgs=("dist",), services=("csv.delivery",),
                  field_classes=("identifier", "directory", "contact"))  # now contact too
    changed = small_district(students=3)
    changed["users"][1]["givenName"] = "Renamed"
    feed(changed)

    relay()

    run = DeliveryRun.objects.filter(destination=destination).order_by("-created_at").first()
    assert run.mode == "bulk" and run.counts["why"] == "release policy changed"


def test_a_lifted_exclusion_brings_the_pupil_back_in_a_bulk(destination, feed, staff_user_factory):
    from apps.governance.services.exclusions import exclusion_create, exclusion_lift

    officer = staff_user_factory(username="officer.dsl", role="safeguarding")
    exclusion = exclusion_create(user_sourced_id="s2", scope="all", reason_code="child_protection",
                                 ends_at=timezone.now() + dt.timedelta(days=30), actor=officer,
                                 note="x")
    relay()
    exclusion_lift(exclusion=exclusion, actor=officer, reason="plan ended")
    changed = small_district(students=3)
    changed["users"][1]["givenName"] = "Renamed"
    feed(changed)

    relay()

    run = DeliveryRun.objects.filter(destination=destination).order_by("-created_at").first()
    assert run.mode == "bulk" and run.counts["why"] == "an exclusion ended"
    bundle = files_of(destination)[run.remote_name]
    assert "s2" in {r["sourcedId"] for r in bundle["users"]}


def test_a_class_moved_out_of_the_approved_scope_is_tobedeleted_in_the_delta(
    db, feed, running_sshd, operator
):
    files = small_district(students=1)
    files["orgs"].append({"sourcedId": "sch2", "name": "School Two", "type": "school",
                          "parentSourcedId": "dist"})
    feed(files)
    integration = world.integration(kind=IntegrationKind.ONEROSTER_CSV, name="sch1-only")
    world.approve(integration, orgs=("sch1",), services=("csv.delivery",))
    destination = services.destination_create(
        integration=integration, transport=Transport.SFTP, actor=operator,
        sftp_host="127.0.0.1", sftp_port=running_sshd.port, sftp_username=running_sshd.user,
        sftp_directory=str(running_sshd.folder(f"scope{integration.pk}")),
        sftp_host_key=running_sshd.host_key_line, sftp_private_key=running_sshd.client_private)
    relay()
    base = version_latest_number()
    assert "cls1" in {r["sourcedId"] for r in files_of(destination)[
        f"oneroster_bulk_v{base}.zip"]["classes"]}

    moved = small_district(students=1)
    moved["orgs"] = files["orgs"]
    moved["classes"][0]["schoolSourcedId"] = "sch2"
    for row in moved["enrollments"]:
        row["schoolSourcedId"] = "sch2"
    feed(moved)
    relay()

    delta = files_of(destination)[f"oneroster_delta_from_v{base}_v{base + 1}.zip"]
    classes = {r["sourcedId"]: r for r in delta["classes"]}
    assert classes["cls1"]["status"] == "tobedeleted" and classes["cls1"]["title"] == ""
    enrollments = {r["sourcedId"]: r["status"] for r in delta["enrollments"]}
    assert set(enrollments.values()) == {"tobedeleted"}


def test_a_paused_destination_is_shown_skipped_and_catches_up_once_resumed(
    destination, feed, operator
):
    services.destination_pause(destination=destination, actor=operator, reason="hold")
    relay()
    [skipped] = DeliveryRun.objects.filter(destination=destination)
    assert skipped.state == RunState.SKIPPED and skipped.error_code == services.DESTINATION_PAUSED
    assert files_of(destination) == {}

    services.destination_resume(destination=destination, actor=operator, reason="go")
    services.destination_drain(destination=destination)

    [(name, _)] = files_of(destination).items()
    assert name == f"oneroster_bulk_v{version_latest_number()}.zip"
    assert DeliveryRun.objects.filter(destination=destination).count() == 1  # the same run


def test_a_suspended_integration_catches_up_on_the_tick_after_reactivation(
    destination, feed, operator
):
    from apps.vendors.services import integration_status_set, integration_suspend

    integration_suspend(integration=destination.integration, actor=operator, reason="review")
    relay()
    assert DeliveryRun.objects.get(destination=destination).state == RunState.SKIPPED
    tasks.schedule_tick.delay()  # still suspended: nothing is re-queued
    assert files_of(destination) == {}

    integration_status_set(integration=destination.integration, status="active",
                           actor=operator, reason="review passed",
                           action="vendors.integration_reactivated")
    tasks.schedule_tick.delay()

    assert len(files_of(destination)) == 1
