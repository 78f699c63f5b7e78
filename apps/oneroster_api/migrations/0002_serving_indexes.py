"""Indexes the REST provider reads the canonical roster by (current rows only).

The canonical tables belong to the roster app; these indexes serve the provider's access
paths and nothing else: sourcedId in code-point order (the default, stable paging order,
whatever the database collation), and the person and class references that nested
endpoints, a user's roles and the release's visibility test join on.
"""

from django.db import migrations

_INDEXES = [
    ("roster_org", "sourced_id", True),
    ("roster_academicsession", "sourced_id", True),
    ("roster_course", "sourced_id", True),
    ("roster_class", "sourced_id", True),
    ("roster_user", "sourced_id", True),
    ("roster_enrollment", "sourced_id", True),
    ("roster_demographic", "sourced_id", True),
    ("roster_role", "user_sourced_id", False),
    ("roster_enrollment", "user_sourced_id", False),
    ("roster_enrollment", "class_sourced_id", False),
]


def _name(table: str, column: str, c_order: bool) -> str:
    return f"oneroster_{table.removeprefix('roster_')}_{column}{'_c' if c_order else ''}"


def _create(table: str, column: str, c_order: bool) -> str:
    collate = ' COLLATE "C"' if c_order else ""
    return (
        f"CREATE INDEX IF NOT EXISTS {_name(table, column, c_order)} "
        f"ON {table} ({column}{collate}) WHERE valid_to_version IS NULL"
    )


class Migration(migrations.Migration):
    dependencies = [
        ("oneroster_api", "0001_initial"),
        ("roster", "0001_initial"),
    ]

    operations = [
        migrations.RunSQL(
            _create(table, column, c_order),
            f"DROP INDEX IF EXISTS {_name(table, column, c_order)}",
        )
        for table, column, c_order in _INDEXES
    ]
