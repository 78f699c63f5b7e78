"""Canonical row ids are drawn from their sequences 1,000 at a time per session.

A first import numbers millions of rows, and one sequence call per row cost a tenth of a
second per million. Ids stay unique and increasing within a session; a session that ends
leaves a gap, which nothing reads meaning into (rows are ordered by version, not id).
"""

from django.db import migrations

TABLES = (
    "roster_org", "roster_academicsession", "roster_course", "roster_class", "roster_user",
    "roster_userprofile", "roster_role", "roster_enrollment", "roster_demographic",
    "roster_category", "roster_lineitem", "roster_result", "roster_scorescale",
)


def _cache(size: int) -> str:
    return "\n".join(f"ALTER TABLE {t} ALTER COLUMN id SET CACHE {size};" for t in TABLES)


class Migration(migrations.Migration):
    dependencies = [("roster", "0009_one_sourced_id_index")]

    operations = [migrations.RunSQL(_cache(1000), _cache(1))]
