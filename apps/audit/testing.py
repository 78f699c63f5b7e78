"""Test-suite support for the append-only audit log (imported by tests/conftest.py only)."""

from __future__ import annotations

from django.db import connection

TRUNCATE_FOR_TESTS_SETTING = "interchange.audit_truncate_for_tests"


def allow_truncate_in_test_database() -> None:
    """Let Django's test flush TRUNCATE the audit tables of this (throwaway) test database.

    TransactionTestCase empties every table with TRUNCATE after each test; the audit triggers
    refuse that everywhere else. The setting is per database, so new connections (threads in
    concurrency tests) inherit it.
    """
    name = connection.settings_dict["NAME"]
    if not name.startswith("test_"):
        raise RuntimeError(f"refusing to relax audit triggers on non-test database {name!r}")
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT format('ALTER DATABASE %I SET {TRUNCATE_FOR_TESTS_SETTING} = %L', "
            "current_database(), 'on')"
        )
        (statement,) = cursor.fetchone()
        cursor.execute(statement)
        cursor.execute("SELECT set_config(%s, 'on', false)", [TRUNCATE_FOR_TESTS_SETTING])
