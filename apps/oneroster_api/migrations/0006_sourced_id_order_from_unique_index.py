"""The byte-wise sourcedId indexes go: the canonical sourcedId columns are byte-wise now
(roster migration 0011), so each table's unique (sourcedId, source) index of current rows
gives the provider's paging order, and the extra index only slowed every write."""

import importlib

from django.db import migrations

_0002 = importlib.import_module("apps.oneroster_api.migrations.0002_serving_indexes")
_ORDER_INDEXES = [(t, c, o) for t, c, o in _0002._INDEXES if o]


class Migration(migrations.Migration):
    dependencies = [
        ("oneroster_api", "0005_role_index_in_render_order"),
        ("roster", "0011_sourced_ids_byte_wise"),
    ]

    operations = [
        migrations.RunSQL(
            f"DROP INDEX IF EXISTS {_0002._name(table, column, c_order)}",
            _0002._create(table, column, c_order),
        )
        for table, column, c_order in _ORDER_INDEXES
    ]
