"""The canonical models follow apps/roster/schema.py, column for column."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from apps.roster import schema
from apps.roster.ingest.staging import BOOKKEEPING, NOT_KEPT, TABLES
from apps.roster.models import CANONICAL_MODELS

SHARED = {"id", "source_id", "sourced_id", "date_last_modified", "content_hash",
          "valid_from_version", "valid_to_version"}


@pytest.mark.parametrize("entity", schema.ENTITIES)
def test_every_schema_column_has_a_canonical_column_except_passwords(entity):
    model = CANONICAL_MODELS[entity]
    columns = {f.column for f in model._meta.concrete_fields} - SHARED
    expected = {c.name for c in schema.SCHEMAS[entity].columns} - set(BOOKKEEPING) - NOT_KEPT
    assert columns == expected
    assert "password" not in columns


@pytest.mark.parametrize("entity", schema.ENTITIES)
def test_required_columns_are_not_null_unless_a_11_feed_cannot_supply_them(entity):
    entity_schema = schema.SCHEMAS[entity]
    fields = {f.column: f for f in CANONICAL_MODELS[entity]._meta.concrete_fields}
    for column in entity_schema.columns:
        if column.name in fields and column.name != "sourced_id":
            nullable = fields[column.name].null
            must_be_nullable = not column.required or column.name in entity_schema.v11_absent
            assert nullable == must_be_nullable, column.name


def test_staging_hashes_the_same_columns_it_stores():
    for entity, tables in TABLES.items():
        assert tables.table == CANONICAL_MODELS[entity]._meta.db_table
        assert tables.content == tuple(
            c.name for c in schema.SCHEMAS[entity].columns
            if c.name not in BOOKKEEPING and c.name not in NOT_KEPT
        )


@pytest.mark.django_db
def test_migrations_are_up_to_date():
    call_command("makemigrations", "roster", "--check", "--dry-run", verbosity=0)
