"""Rollback of one source to version N, as a new version (history is never rewritten).

The target state is the source's rows valid at N; the current state is its rows with
no ``valid_to_version``. Compared by (sourcedId, content hash): current rows absent
from the target are closed, target rows absent from the current state are copied in
as new rows. Other sources' rows are never read or written.
"""

# SQL here is composed from identifiers of the schema registry (never from input);
# values are bound parameters or int() casts.
# ruff: noqa: S608

from __future__ import annotations

from django.db import connection

from apps.roster.ingest.apply import ChangeSet, EntityChange
from apps.roster.ingest.staging import TABLES


def rollback_apply(*, source_id: int, to_version: int, version: int | None) -> ChangeSet:
    """Compute (and, when ``version`` is given, apply) the rollback of every entity.

    With ``version=None`` nothing is written: the change set says whether a rollback
    would change anything.
    """
    changes = ChangeSet()
    with connection.cursor() as cursor:
        for entity, t in TABLES.items():
            as_of = (
                f"SELECT * FROM {t.table} WHERE source_id = {int(source_id)} "
                f"AND valid_from_version <= {int(to_version)} "
                f"AND (valid_to_version IS NULL OR valid_to_version > {int(to_version)})"
            )
            cursor.execute("DROP TABLE IF EXISTS rb_close, rb_open")
            cursor.execute(
                f"""
                CREATE TEMPORARY TABLE rb_close AS
                SELECT c.id, c.sourced_id FROM {t.table} c
                WHERE c.source_id = {int(source_id)} AND c.valid_to_version IS NULL
                  AND NOT EXISTS (SELECT 1 FROM ({as_of}) a WHERE a.sourced_id = c.sourced_id
                                  AND a.content_hash = c.content_hash)
                """
            )
            cursor.execute(
                f"""
                CREATE TEMPORARY TABLE rb_open AS
                SELECT a.id, a.sourced_id FROM ({as_of}) a
                WHERE NOT EXISTS (SELECT 1 FROM {t.table} c WHERE c.source_id = {int(source_id)}
                    AND c.valid_to_version IS NULL AND c.sourced_id = a.sourced_id
                    AND c.content_hash = a.content_hash)
                """
            )
            cursor.execute(
                "SELECT (SELECT count(*) FROM rb_close c WHERE NOT EXISTS "
                "        (SELECT 1 FROM rb_open o WHERE o.sourced_id = c.sourced_id)),"
                "       (SELECT count(*) FROM rb_open o WHERE NOT EXISTS "
                "        (SELECT 1 FROM rb_close c WHERE c.sourced_id = o.sourced_id)),"
                "       (SELECT count(*) FROM rb_open o WHERE EXISTS "
                "        (SELECT 1 FROM rb_close c WHERE c.sourced_id = o.sourced_id))"
            )
            deleted, added, updated = cursor.fetchone()
            change = EntityChange(added=added, updated=updated, deleted=deleted)
            if change.total:
                changes.by_entity[entity] = change
            if version is not None and change.total:
                cols = (
                    f"sourced_id, date_last_modified, content_hash, {t.content_list()}"
                )
                cursor.execute(
                    f"UPDATE {t.table} SET valid_to_version = %s "
                    f"WHERE id IN (SELECT id FROM rb_close)",
                    [version],
                )
                cursor.execute(
                    f"INSERT INTO {t.table} (source_id, valid_from_version, {cols}) "
                    f"SELECT {int(source_id)}, {int(version)}, {cols} FROM {t.table} "
                    f"WHERE id IN (SELECT id FROM rb_open)"
                )
        cursor.execute("DROP TABLE IF EXISTS rb_close, rb_open")
    return changes
