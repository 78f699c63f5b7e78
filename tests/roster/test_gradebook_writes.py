"""Gradebook writes: a version per batch, owned by the writer, idempotent, never touching
another source's rows; SIS imports and rollbacks leave a tool's grades alone."""

from __future__ import annotations

import datetime as dt
import json
import threading
from decimal import Decimal

import pytest
from django.db import connection, connections, transaction

from apps.roster import gradebook
from apps.roster.gradebook import GradebookWriteError, gradebook_write, integration_source
from apps.roster.ingest.staging import TABLES
from apps.roster.models import LineItem, Result, RosterOutbox, RosterVersion, Source, SourceKind
from apps.roster.selectors import roster_current
from apps.roster.services import roster_rollback
from tests.roster.builders import small_district
from tests.vendors.factories import IntegrationFactory

pytestmark = pytest.mark.django_db


def gradebook_feed(students: int = 3) -> dict:
    """The small district with the SIS's own category, line item and one result."""
    feed = small_district(students=students)
    feed["categories"] = [{"sourcedId": "cat-sis", "title": "Homework"}]
    feed["lineItems"] = [{
        "sourcedId": "li-sis", "title": "Term test", "assignDate": "2024-10-01",
        "dueDate": "2024-10-08", "classSourcedId": "cls1", "categorySourcedId": "cat-sis",
        "academicSessionSourcedId": "term1", "resultValueMin": "0", "resultValueMax": "100",
        "schoolSourcedId": "sch1",
    }]
    feed["results"] = [{
        "sourcedId": "res-sis-s1", "lineItemSourcedId": "li-sis", "studentSourcedId": "s1",
        "scoreStatus": "fully graded", "score": "71", "scoreDate": "2024-10-09",
    }]
    return feed


def line_item(sid: str = "li-tool", **extra) -> dict:  # type: ignore[no-untyped-def]
    return {
        "sourced_id": sid, "title": "Quiz 1", "description": None,
        "assign_date": dt.date(2024, 10, 2), "due_date": dt.date(2024, 10, 3),
        "class_sourced_id": "cls1", "category_sourced_id": "cat-sis",
        "academic_session_sourced_id": "term1", "result_value_min": Decimal("0"),
        "result_value_max": Decimal("10"), "school_sourced_id": "sch1", **extra,
    }


def result(sid: str, student: str, score: str | None = "7", *, item: str = "li-tool",
           status: str = "fully graded", **extra) -> dict:  # type: ignore[no-untyped-def]
    return {
        "sourced_id": sid, "line_item_sourced_id": item, "student_sourced_id": student,
        "score_status": status, "score": score, "score_date": "2024-10-03",
        "class_sourced_id": "cls1", **extra,
    }


@pytest.fixture
def tool() -> Source:
    return integration_source(integration=IntegrationFactory())


@pytest.fixture
def sis_world(import_feed):  # type: ignore[no-untyped-def]
    return import_feed(gradebook_feed())


def current_results(source: Source | None = None) -> dict[str, Decimal | None]:
    return dict(roster_current(Result, source=source).values_list("sourced_id", "score"))


def test_an_integration_has_one_stable_source_of_kind_integration():
    integration = IntegrationFactory()
    first = integration_source(integration=integration)
    integration.name = "Renamed"
    integration.save()
    assert integration_source(integration=integration) == first
    assert first.kind == SourceKind.INTEGRATION
    assert first.name == f"integration-{integration.pk}"


def test_a_write_batch_is_one_version_with_only_its_rows_and_an_outbox_row(sis_world, tool):
    before = RosterVersion.objects.count()

    outcome = gradebook_write(
        source=tool,
        upserts={"lineItems": [line_item()],
                 "results": [result("r1", "s1"), result("r2", "s2", "12")]},
    )

    version = outcome.version
    assert RosterVersion.objects.count() == before + 1
    assert version.source == tool and version.kind == "gradebook"
    assert version.added == 3 and version.updated == 0 and version.deleted == 0
    assert version.by_entity == {
        "lineItems": {"added": 1, "updated": 0, "deleted": 0, "stale": 0},
        "results": {"added": 2, "updated": 0, "deleted": 0, "stale": 0},
    }
    stored = RosterVersion.objects.get(pk=version.pk)
    assert (stored.number, stored.source, stored.added, stored.by_entity, stored.created_at) == (
        version.number, tool, 3, version.by_entity, version.created_at)
    # the outbox row deliveries subscribe to, shaped as an import's
    assert RosterOutbox.objects.get(version=version).payload == {
        "version": version.number, "source": tool.name, "kind": "gradebook",
        "changes": {"added": 3, "updated": 0, "deleted": 0, "by_entity": version.by_entity},
    }
    assert outcome.created == {"lineItems": ("li-tool",), "results": ("r1", "r2")}
    # only the three written rows carry the new version: not a copy of the world
    opened = sum(
        t.model.objects.filter(valid_from_version=version.number).count()
        for t in TABLES.values()
    )
    assert opened == 3
    assert current_results(tool) == {"r1": Decimal("7"), "r2": Decimal("12")}


def test_an_identical_write_creates_no_version(sis_world, tool):
    gradebook_write(source=tool, upserts={"lineItems": [line_item()],
                                          "results": [result("r1", "s1", "7.0")]})
    before = RosterVersion.objects.count()

    outcome = gradebook_write(source=tool, upserts={"results": [result("r1", "s1", "7")]})

    assert outcome.version is None
    assert outcome.unchanged == {"results": ("r1",)}
    assert RosterVersion.objects.count() == before


def test_a_changed_score_closes_the_old_row_and_opens_a_new_one(sis_world, tool):
    first = gradebook_write(source=tool, upserts={"lineItems": [line_item()],
                                                  "results": [result("r1", "s1", "7")]})
    outcome = gradebook_write(
        source=tool, upserts={"results": [result("r1", "s1", "9", status="partially graded")]}
    )

    assert outcome.updated == {"results": ("r1",)} and outcome.version.updated == 1
    history = Result.objects.filter(sourced_id="r1").order_by("valid_from_version")
    assert [(r.score, r.valid_from_version, r.valid_to_version) for r in history] == [
        (Decimal("7"), first.version.number, outcome.version.number),
        (Decimal("9"), outcome.version.number, None),
    ]


def test_the_row_hash_is_the_one_ingest_computes(sis_world, tool):
    gradebook_write(source=tool, upserts={
        "lineItems": [line_item()],
        "results": [result("r1", "s1", "7", comment="Well done", late=True)],
        "scoreScales": [{"sourced_id": "ss1", "title": "A-E", "type": "letter",
                         "org_sourced_id": "sch1", "course_sourced_id": "crs1",
                         "class_sourced_id": "cls1", "score_scale_value": ["A", "B, or C"]}],
        "categories": [{"sourced_id": "cat-tool", "title": "Quizzes", "weight": "12.5"}],
    })
    with connection.cursor() as cursor:
        for entity in ("categories", "lineItems", "results", "scoreScales"):
            t = TABLES[entity]
            # the SIS's rows were hashed by ingest from staging; the tool's by the writer
            cursor.execute(
                f"SELECT source_id, count(*) FILTER (WHERE content_hash = "  # noqa: S608
                f"{t.hash_sql('r')}), count(*) FROM {t.table} r GROUP BY 1"
            )
            for _source, matching, total in cursor.fetchall():
                assert matching == total, entity


def test_writing_a_row_another_source_owns_is_refused_and_nothing_is_applied(sis_world, tool):
    before = RosterVersion.objects.count()

    with pytest.raises(GradebookWriteError) as refused:
        gradebook_write(source=tool, upserts={
            "results": [result("r1", "s1"), result("res-sis-s1", "s1", "100", item="li-sis")],
        })

    assert refused.value.code == gradebook.NOT_OWNER
    assert refused.value.sourced_id == "res-sis-s1"
    assert RosterVersion.objects.count() == before
    assert current_results() == {"res-sis-s1": Decimal("71")}


def test_a_tool_cannot_delete_or_overwrite_another_tools_result(sis_world, tool):
    other = integration_source(integration=IntegrationFactory())
    gradebook_write(source=tool, upserts={"lineItems": [line_item()],
                                          "results": [result("r1", "s1")]})

    for attempt in (
        {"upserts": {"results": [result("r1", "s1", "0")]}},
        {"upserts": {}, "deletes": {"results": ["r1"]}},
    ):
        with pytest.raises(GradebookWriteError) as refused:
            gradebook_write(source=other, **attempt)
        assert refused.value.code == gradebook.NOT_OWNER

    assert current_results(tool) == {"r1": Decimal("7")}


def test_deleting_closes_only_the_writers_row_and_reports_missing_ones(sis_world, tool):
    gradebook_write(source=tool, upserts={"lineItems": [line_item()],
                                          "results": [result("r1", "s1")]})

    outcome = gradebook_write(source=tool, upserts={}, deletes={"results": ["r1", "nope"]})

    assert outcome.deleted == {"results": ("r1",)} and outcome.missing == {"results": ("nope",)}
    assert outcome.version.deleted == 1
    assert "r1" not in current_results()
    # deleting again changes nothing and writes no version
    again = gradebook_write(source=tool, upserts={}, deletes={"results": ["r1"]})
    assert again.version is None and again.missing == {"results": ("r1",)}


@pytest.mark.parametrize(
    ("upserts", "code"),
    [
        ({"users": [{"sourced_id": "u1"}]}, gradebook.UNKNOWN_ENTITY),
        ({"results": [result("r1", "s1", shoe_size=4)]}, gradebook.UNKNOWN_COLUMN),
        ({"results": [result("r1", "s1", score_status=None)]}, gradebook.MISSING_COLUMN),
        ({"results": [result("r1", "s1"), result("r1", "s2")]}, gradebook.DUPLICATE_SOURCED_ID),
        ({"results": [result("r1", "s1", "lots")]}, gradebook.BAD_VALUE),
    ],
)
def test_a_bad_batch_is_refused_whole_with_a_code(sis_world, tool, upserts, code):
    before = RosterVersion.objects.count()
    with pytest.raises(GradebookWriteError) as refused:
        gradebook_write(source=tool, upserts={"lineItems": [line_item()], **upserts})
    assert refused.value.code == code
    assert RosterVersion.objects.count() == before
    assert not roster_current(LineItem, source=tool).exists()


def test_a_sis_bulk_import_after_tool_writes_leaves_the_tools_results_intact(
    import_feed, sis_world, tool
):
    gradebook_write(source=tool, upserts={"lineItems": [line_item()],
                                          "results": [result("r1", "s1"), result("r2", "s2")]})
    # the SIS sends its gradebook again in bulk, without any of the tool's rows (and with
    # its own result changed), which deletes whatever else the SIS owned
    feed = gradebook_feed()
    feed["results"][0]["score"] = "75"

    run = import_feed(feed)

    assert run.state == "applied"
    assert current_results(tool) == {"r1": Decimal("7"), "r2": Decimal("7")}
    assert roster_current(LineItem, source=tool).count() == 1
    assert current_results()["res-sis-s1"] == Decimal("75")


def test_a_sis_rollback_after_tool_writes_leaves_the_tools_results_intact(
    import_feed, sis_world, tool
):
    sis = Source.objects.get(name="sis")
    first = sis_world.version.number
    feed = gradebook_feed()
    feed["results"][0]["score"] = "80"
    import_feed(feed)
    gradebook_write(source=tool, upserts={"lineItems": [line_item()],
                                          "results": [result("r1", "s1")]})

    rolled = roster_rollback(source=sis, to_version=first)

    assert rolled is not None and rolled.updated == 1
    assert current_results() == {"res-sis-s1": Decimal("71"), "r1": Decimal("7")}
    assert roster_current(LineItem, source=tool).count() == 1


def test_a_tool_can_roll_back_its_own_writes_without_touching_the_sis(sis_world, tool):
    first = gradebook_write(source=tool, upserts={"lineItems": [line_item()],
                                                  "results": [result("r1", "s1")]})
    gradebook_write(source=tool, upserts={"results": [result("r1", "s1", "2"),
                                                      result("r2", "s2")]})

    roster_rollback(source=tool, to_version=first.version.number)

    assert current_results() == {"res-sis-s1": Decimal("71"), "r1": Decimal("7")}


def test_an_integrations_source_is_remembered_only_once_committed(
        django_capture_on_commit_callbacks, django_assert_num_queries):
    integration = IntegrationFactory()

    # created in a transaction that rolls back: neither stored nor remembered
    with (django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError),
          transaction.atomic()):
        integration_source(integration=integration)
        raise RuntimeError("the write failed")
    assert not Source.objects.filter(name=f"integration-{integration.pk}").exists()

    with django_capture_on_commit_callbacks(execute=True):
        source = integration_source(integration=integration)
    with django_assert_num_queries(0):
        assert integration_source(integration=integration) == source


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_get_consecutive_versions_each_holding_only_its_own_rows():
    writers, rounds = 4, 5
    sources = [integration_source(integration=IntegrationFactory()) for _ in range(writers)]
    failures: list[BaseException] = []

    def write(n: int) -> None:
        try:
            for k in range(rounds):  # the same result, replaced each round
                gradebook_write(source=sources[n],
                                upserts={"results": [result(f"r{n}", "s1", str(k))]})
        except BaseException as exc:  # noqa: BLE001 - asserted below
            failures.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    numbers = list(RosterVersion.objects.order_by("number").values_list("number", flat=True))
    assert numbers == list(range(numbers[0], numbers[0] + writers * rounds))
    for version in RosterVersion.objects.all():
        opened = Result.objects.filter(valid_from_version=version.number)
        assert [r.source_id for r in opened] == [version.source_id]
        assert RosterOutbox.objects.get(version=version).payload["version"] == version.number
    assert current_results() == {f"r{n}": Decimal(rounds - 1) for n in range(writers)}
    assert Result.objects.count() == writers * rounds


def test_the_probe_reads_the_current_rows_it_needs_by_index_not_the_whole_table(tool):
    # given a results table the size of a real gradebook's, with statistics
    gradebook_write(source=tool, upserts={"results": [
        result(f"r{n}", f"s{n % 300}", str(n % 20), item=f"li{n % 40}") for n in range(3000)
    ]})
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE roster_result")
        # when one score is probed
        cursor.execute("EXPLAIN " + gradebook._statements("results").probe.sql,
                       [json.dumps([result("r7", "s7", "9")])])
        plan = "\n".join(row[0] for row in cursor.fetchall())

    # then through the current-row index, once per incoming row
    assert "Seq Scan on roster_result" not in plan, plan
    assert "roster_result_one_current" in plan, plan


def transaction_status() -> str:
    return connection.connection.info.transaction_status.name


@pytest.mark.django_db(transaction=True)
def test_a_write_of_its_own_begins_and_commits_with_its_statements_in_two_round_trips(
    tool, django_assert_num_queries
):
    gradebook_write(source=tool, upserts={"results": [result("r1", "s1", "5")]})

    with django_assert_num_queries(2):  # BEGIN, lock and probe; write and COMMIT
        outcome = gradebook_write(source=tool, upserts={"results": [result("r1", "s1", "6")]})
    with django_assert_num_queries(2):  # nothing changed: BEGIN, lock and probe; COMMIT
        gradebook_write(source=tool, upserts={"results": [result("r1", "s1", "6")]})

    assert outcome.updated == {"results": ("r1",)}
    assert transaction_status() == "IDLE"
    other = connections.create_connection("default")
    try:  # committed: another connection sees it
        with other.cursor() as cursor:
            cursor.execute("SELECT score FROM roster_result WHERE sourced_id = 'r1' "
                           "AND valid_to_version IS NULL")
            assert cursor.fetchone() == (Decimal("6"),)
    finally:
        other.close()


@pytest.mark.django_db(transaction=True)
def test_a_refused_or_unreadable_write_of_its_own_rolls_back_and_releases_the_lock(tool):
    owner = integration_source(integration=IntegrationFactory())
    gradebook_write(source=owner, upserts={"results": [result("theirs", "s1", "5")]})
    versions = RosterVersion.objects.count()

    with pytest.raises(GradebookWriteError) as refused:
        gradebook_write(source=tool, upserts={"results": [result("theirs", "s1", "9")]})
    assert refused.value.code == gradebook.NOT_OWNER
    assert transaction_status() == "IDLE"
    with pytest.raises(GradebookWriteError) as unreadable:
        gradebook_write(source=tool, upserts={"results": [result("mine", "s1", "abc")]})
    assert unreadable.value.code == gradebook.BAD_VALUE
    assert transaction_status() == "IDLE"

    assert RosterVersion.objects.count() == versions
    assert current_results() == {"theirs": Decimal("5")}
    other = connections.create_connection("default")
    try:  # the version lock is free again
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", gradebook.VERSION_LOCK_PARAMS)
            assert cursor.fetchone() == (True,)
    finally:
        other.close()
    gradebook_write(source=tool, upserts={"results": [result("mine", "s1", "9")]})
    assert current_results(tool) == {"mine": Decimal("9")}


def a_guard_runs_in_the_write_transaction_and_falls_with_it(tool: Source) -> None:
    owner = integration_source(integration=IntegrationFactory())
    gradebook_write(source=owner, upserts={"results": [result("theirs", "s1", "5")]})
    touch = ("UPDATE roster_source SET description = 'touched' WHERE id = %s RETURNING id",
             [tool.pk])
    nothing = ("SELECT 1 WHERE false", [])

    with pytest.raises(GradebookWriteError) as refused:
        gradebook_write(source=tool, upserts={"results": [result("mine", "s1", "1")]},
                        guard=nothing)
    assert refused.value.code == gradebook.GUARD_REFUSED
    with pytest.raises(GradebookWriteError) as foreign:  # the guard held, the write did not
        gradebook_write(source=tool, upserts={"results": [result("theirs", "s1", "1")]},
                        guard=touch)
    assert foreign.value.code == gradebook.NOT_OWNER

    assert Source.objects.get(pk=tool.pk).description != "touched"
    assert current_results() == {"theirs": Decimal("5")}
    gradebook_write(source=tool, upserts={"results": [result("mine", "s1", "1")]}, guard=touch)
    assert Source.objects.get(pk=tool.pk).description == "touched"
    assert current_results(tool) == {"mine": Decimal("1")}


def test_a_guard_falls_with_a_write_inside_the_callers_transaction(tool):
    assert connection.in_atomic_block
    a_guard_runs_in_the_write_transaction_and_falls_with_it(tool)


@pytest.mark.django_db(transaction=True)
def test_a_guard_falls_with_a_write_of_its_own(tool):
    assert not connection.in_atomic_block
    a_guard_runs_in_the_write_transaction_and_falls_with_it(tool)
