"""portal.db.prepared: a statement is prepared once per connection, in the same round trip
as its first execution, and gives the same answers as the plain statement."""

from __future__ import annotations

import pytest
from django.core.signals import request_finished
from django.db import DatabaseError, connection

from portal.db import prepared

pytestmark = pytest.mark.django_db


def prepared_here(name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE name = %s", [name])
        return cursor.fetchone()[0] == 1


def test_a_statement_is_prepared_once_then_executed_by_name(django_assert_num_queries):
    statement = prepared.Prepared("SELECT %s::int + 1, '100%%'")

    with django_assert_num_queries(1), connection.cursor() as cursor:  # PREPARE with EXECUTE
        prepared.execute(cursor, statement, [41])
        first = cursor.fetchall()
    with django_assert_num_queries(1), connection.cursor() as cursor:
        prepared.execute(cursor, statement, [1])
        second = cursor.fetchall()

    assert first == [(42, "100%")] and second == [(2, "100%")]
    assert statement.statements() == [statement.execute_sql]
    assert prepared_here(statement.name)


@pytest.mark.django_db(transaction=True)
def test_a_new_connection_prepares_again():
    statement = prepared.Prepared("SELECT %s::text")
    with connection.cursor() as cursor:
        prepared.execute(cursor, statement, ["a"])
    connection.close()

    with connection.cursor() as cursor:
        prepared.execute(cursor, statement, ["b"])
        assert cursor.fetchall() == [("b",)]


def test_prelude_and_postlude_travel_with_it_leaving_its_rows_current():
    statement = prepared.Prepared("SELECT setting FROM pg_settings WHERE name = %s")
    prelude = [("SET LOCAL application_name = %s", ["prelude-ran"])]
    with connection.cursor() as cursor:
        prepared.execute(cursor, statement, ["application_name"], prelude,
                         postlude=("SELECT 'postlude'",))
        assert cursor.fetchall() == [("prelude-ran",)]
    assert prelude == []


def test_switched_off_it_runs_the_plain_statement(settings):
    settings.DATABASE_PREPARED_STATEMENTS = False
    statement = prepared.Prepared("SELECT %s::int * 2")
    with connection.cursor() as cursor:
        prepared.execute(cursor, statement, [21])
        assert cursor.fetchall() == [(42,)]
    assert not prepared_here(statement.name)


@pytest.mark.django_db(transaction=True)
def test_a_session_that_lost_its_statements_is_replaced_after_the_request():
    statement = prepared.Prepared("SELECT %s::int")
    with connection.cursor() as cursor:
        prepared.execute(cursor, statement, [1])
        cursor.execute("DEALLOCATE ALL")  # what a pooling proxy or DISCARD ALL would do

    with pytest.raises(DatabaseError), connection.cursor() as cursor:
        prepared.execute(cursor, statement, [2])
    request_finished.send(sender=None)  # the end of that request: the connection is replaced

    assert connection.connection is None
    with connection.cursor() as cursor:
        prepared.execute(cursor, statement, [3])
        assert cursor.fetchall() == [(3,)]


def test_a_connection_keeps_a_bounded_number_of_statements(monkeypatch):
    monkeypatch.setattr(prepared, "MAX_PER_CONNECTION", 3)
    statements = [prepared.Prepared(f"SELECT %s::int + {n}") for n in range(5)]

    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")  # what earlier tests prepared on this connection
        prepared._prepared.pop(connection.connection, None)
        for n, statement in enumerate(statements):
            prepared.execute(cursor, statement, [n])
            assert cursor.fetchall() == [(2 * n,)]
        cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'ix_%%'")
        (kept,) = cursor.fetchone()

    assert kept <= 3
    assert all(prepared_here(s.name) for s in statements[3:])


def plan_cache_mode() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW plan_cache_mode")
        return cursor.fetchone()[0]


def test_a_generic_statement_runs_its_generic_plan_and_leaves_the_session_as_it_was():
    statement = prepared.Prepared(
        "SELECT current_setting('plan_cache_mode'), %s::int", generic=True)

    with connection.cursor() as cursor:
        for n in (1, 2):
            prepared.execute(cursor, statement, [n])
            assert cursor.fetchall() == [("force_generic_plan", n)]
    assert plan_cache_mode() == "auto"


@pytest.mark.django_db(transaction=True)
def test_a_generic_statement_that_fails_leaves_the_session_as_it_was():
    statement = prepared.Prepared("SELECT 1 / %s::int", generic=True)
    with connection.cursor() as cursor:
        prepared.execute(cursor, statement, [1])

    with pytest.raises(DatabaseError), connection.cursor() as cursor:
        prepared.execute(cursor, statement, [0])

    assert plan_cache_mode() == "auto"


@pytest.mark.django_db(transaction=True)
def test_a_first_execution_that_fails_leaves_the_next_one_working():
    # the PREPARE runs and stays in the session; only its EXECUTE fails
    statement = prepared.Prepared("SELECT 1 / %s::int")
    with pytest.raises(DatabaseError), connection.cursor() as cursor:
        prepared.execute(cursor, statement, [0])
    assert prepared_here(statement.name)

    with connection.cursor() as cursor:
        prepared.execute(cursor, statement, [1])
        assert cursor.fetchall() == [(1,)]


@pytest.mark.django_db(transaction=True)
def test_a_first_round_trip_that_fails_before_its_prepare_leaves_the_next_one_working():
    statement = prepared.Prepared("SELECT 2 * %s::int")
    with pytest.raises(DatabaseError), connection.cursor() as cursor:
        prepared.execute(cursor, statement, [1], [("SELECT 1 / 0", [])])
    assert not prepared_here(statement.name)

    with connection.cursor() as cursor:
        prepared.execute(cursor, statement, [2])
        assert cursor.fetchall() == [(4,)]
