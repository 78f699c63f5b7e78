"""Cut every stored content hash to the 64-bit record hash ingest now computes.

Migration 0004 stored two seeded record hashes (seeds 0 and 1) side by side; ingest now
computes only the first (staging.hash_sql), so each stored hash keeps its first 8 bytes,
which are exactly that hash: no row is read for its content. Reversing recomputes the
128-bit hashes with 0004's SQL.
"""

import importlib

from django.db import migrations

_0004 = importlib.import_module("apps.roster.migrations.0004_content_hash_record_hash")


def _cut_sql() -> str:
    return "\n".join(
        f"UPDATE {table} SET content_hash = substr(content_hash, 1, 8) "  # noqa: S608
        f"WHERE length(content_hash) > 8;"
        for table in _0004.CONTENT
    )


class Migration(migrations.Migration):
    dependencies = [("roster", "0007_gate_baseline")]

    operations = [migrations.RunSQL(_cut_sql(), _0004._rehash_sql())]
