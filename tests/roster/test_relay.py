"""A large file's first load is computed on a second connection and written here by COPY
(relay.py); what it stores is exactly what one INSERT would have stored.

Real imports, with the size threshold lowered so that a small district's files are staged
as a large one's (unlogged, readable from a second connection): one source takes the
relay, another the plain INSERT, and every stored value is compared.
"""

from __future__ import annotations

import pytest
from django.db import connection

from apps.roster.ingest import apply as apply_sql
from apps.roster.ingest import fastcopy
from apps.roster.models import CANONICAL_MODELS, ImportState
from tests.roster.builders import small_district

pytestmark = pytest.mark.django_db(transaction=True)

LARGE, SMALL = 0, 10**12  # UNLOGGED_FROM_BYTES: every file large; none


@pytest.fixture
def relayed(monkeypatch):  # type: ignore[no-untyped-def]
    """The canonical tables written through the relay, in order (a small district's files
    relayed as a large one's would be, once staged where a second connection reads them)."""
    monkeypatch.setattr(apply_sql, "RELAY_FROM_ROWS", 0)
    tables: list[str] = []
    real = apply_sql.relay_rows

    def spy(cursor, **kwargs):  # type: ignore[no-untyped-def]
        tables.append(kwargs["table"])
        return real(cursor, **kwargs)

    monkeypatch.setattr(apply_sql, "relay_rows", spy)
    return tables


def _stored(source: str) -> dict[str, list[tuple]]:
    """Every stored value of a source's rows, without row ids, owner and versions."""
    out = {}
    for entity, model in CANONICAL_MODELS.items():
        fields = [f.attname for f in model._meta.concrete_fields
                  if f.attname not in ("id", "source_id", "valid_from_version",
                                      "valid_to_version")]
        rows = model.objects.filter(source__name=source).values_list(*fields)
        out[entity] = sorted(
            tuple(bytes(v) if isinstance(v, memoryview) else v for v in row) for row in rows
        )
    return out


def _awkward_district() -> dict[str, list[dict]]:
    """A district whose text needs escaping on its way through COPY's text format."""
    feed = small_district(students=3)
    feed["users"][1].update(givenName="Zoë \\ Back\tslash", middleName='say "hi"',
                            familyName="\\N", email="z@example.org", grades="07,08")
    feed["classes"][0]["title"] = "7M1 \\. end"
    feed["enrollments"][1].update(beginDate="2024-09-02", endDate="2025-07-22")
    feed["demographics"][0].update(birthDate="2012-12-31")
    return feed


def test_a_relayed_first_load_stores_what_an_insert_stores(monkeypatch, import_feed, relayed):
    feed = _awkward_district()

    monkeypatch.setattr(fastcopy, "UNLOGGED_FROM_BYTES", LARGE)
    through_relay = import_feed(feed, source="relayed")
    monkeypatch.setattr(fastcopy, "UNLOGGED_FROM_BYTES", SMALL)
    through_insert = import_feed(feed, source="inserted")

    assert through_relay.state == through_insert.state == ImportState.APPLIED
    assert {"roster_user", "roster_enrollment", "roster_class"} <= set(relayed)
    relay_rows, insert_rows = _stored("relayed"), _stored("inserted")
    assert relay_rows == insert_rows
    assert ("Zoë \\ Back\tslash",) in {(r[0],) for r in
                                       CANONICAL_MODELS["users"].objects.values_list("given_name")}
    # and the relayed rows diff as unchanged against the same file
    again = import_feed(feed, source="relayed")
    assert again.state == ImportState.NO_CHANGES


def test_the_second_connection_formats_values_as_this_one_reads_them(
    monkeypatch, import_feed, relayed
):
    # given a server whose default date style writes month first (09/02/2024) and an
    # importing session that reads day first
    params = connection.get_connection_params

    def month_first():  # type: ignore[no-untyped-def]
        out = params()
        out["options"] = f"{out.get('options', '')} -c DateStyle=SQL,MDY".strip()
        return out

    monkeypatch.setattr(connection, "get_connection_params", month_first)
    monkeypatch.setattr(fastcopy, "UNLOGGED_FROM_BYTES", LARGE)
    connection.ensure_connection()
    with connection.cursor() as cursor:
        cursor.execute("SET DateStyle = 'ISO, DMY'")
    try:
        run = import_feed(_awkward_district(), source="relayed")
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET DateStyle")

    # then every date arrives as it was in the file
    assert run.state == ImportState.APPLIED, run.message
    assert "roster_enrollment" in relayed
    enrollment = CANONICAL_MODELS["enrollments"].objects.get(sourced_id="e-s1")
    assert (str(enrollment.begin_date), str(enrollment.end_date)) == ("2024-09-02",
                                                                      "2025-07-22")
    pupil = CANONICAL_MODELS["demographics"].objects.get(sourced_id="s1")
    assert str(pupil.birth_date) == "2012-12-31"


def test_a_first_load_inside_a_transaction_is_inserted_on_this_connection(
    monkeypatch, import_feed, relayed
):
    # staged rows of an import inside a caller's transaction are not committed: no other
    # connection could read them
    from django.db import transaction

    monkeypatch.setattr(fastcopy, "UNLOGGED_FROM_BYTES", LARGE)
    with transaction.atomic():
        run = import_feed(small_district(students=2), source="inside")

    assert run.state == ImportState.APPLIED
    assert relayed == []
    assert CANONICAL_MODELS["users"].objects.filter(source__name="inside").count() == 3


def test_without_a_second_connection_imports_are_written_on_one(
    monkeypatch, import_feed, relayed
):
    # given a server that accepts no new connection (its limit reached, a pooler in the
    # way), with thresholds at which a small district is staged partly beside, relayed,
    # diffed on a second connection and analysed on two
    import socket

    from django.db.backends.postgresql.base import DatabaseWrapper

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    real = DatabaseWrapper.get_connection_params

    def refused(self):  # type: ignore[no-untyped-def]
        return {**real(self), "host": "127.0.0.1", "port": closed_port}

    connection.ensure_connection()  # this connection stays; only new ones are refused
    monkeypatch.setattr(DatabaseWrapper, "get_connection_params", refused)
    monkeypatch.setattr(fastcopy, "UNLOGGED_FROM_BYTES", LARGE)
    monkeypatch.setattr(apply_sql, "CONCURRENT_DIFF_ROWS", 1)
    monkeypatch.setattr(apply_sql, "STATISTICS_MIN_ROWS", 1)
    monkeypatch.setattr(fastcopy, "BESIDE_FROM_BYTES", 1)  # the largest file staged beside
    feed = small_district(students=4)

    # when a first load and then a change are imported
    first = import_feed(feed, source="alone")
    feed["enrollments"] = feed["enrollments"][1:]
    second = import_feed(feed, source="alone")

    # then both are applied on this connection alone
    assert (first.state, second.state) == (ImportState.APPLIED, ImportState.APPLIED)
    assert relayed  # the relay was tried, and gave way
    assert second.changes["deleted"] == 1
    enrollments = CANONICAL_MODELS["enrollments"].objects
    assert enrollments.filter(valid_to_version=None).count() == len(feed["enrollments"])


def test_a_first_load_of_few_rows_is_inserted_here_even_where_it_could_be_relayed(
    monkeypatch, import_feed, relayed
):
    # given every file staged where a second connection could read it, and a threshold
    # at the district's users (a teacher and 30 students; 30 demographics, one class)
    monkeypatch.setattr(fastcopy, "UNLOGGED_FROM_BYTES", LARGE)
    feed = small_district(students=30)
    monkeypatch.setattr(apply_sql, "RELAY_FROM_ROWS", len(feed["users"]))

    run = import_feed(feed)

    # then only the files of at least that many rows went through the relay
    assert run.state == ImportState.APPLIED
    assert set(relayed) == {"roster_user", "roster_role", "roster_enrollment"}
