"""Planner statistics only for the canonical columns queries filter, join or group on.

ANALYZE samples every column of a table and sorts each column's sample. For names,
titles, emails and lists (compared under the database's collation, arrays element by
element) that was most of its cost: after a large district's first import the refresh
took 0.3 s for the users table alone, for statistics no query plan ever uses (no index
and no join is on those columns; a filter on them is estimated with the default
selectivity, which is what a seldom-used directory search needs). Identity, ownership,
versions, references and enumerations keep theirs.
"""

from django.db import migrations

UNPLANNED = {
    "roster_org": ["name", "identifier"],
    "roster_academicsession": ["title"],
    "roster_course": ["title", "course_code", "grades", "subjects", "subject_codes"],
    "roster_class": ["title", "grades", "class_code", "location", "subjects",
                     "subject_codes", "periods"],
    "roster_user": ["username", "user_ids", "given_name", "family_name", "middle_name",
                    "identifier", "email", "sms", "phone", "grades",
                    "user_master_identifier", "preferred_given_name",
                    "preferred_middle_name", "preferred_family_name", "pronouns"],
    "roster_userprofile": ["vendor_id", "application_id", "description", "credential_type",
                           "username"],
    "roster_role": ["begin_date", "end_date"],
    "roster_enrollment": ["begin_date", "end_date"],
    "roster_demographic": ["country_of_birth_code", "state_of_birth_abbreviation",
                           "city_of_birth", "public_school_residence_status"],
    "roster_category": ["title"],
    "roster_lineitem": ["title", "description"],
    "roster_result": ["comment", "text_score"],
    "roster_scorescale": ["title", "score_scale_value"],
}
EVERY_TABLE = ["date_last_modified", "content_hash"]


def _statistics(target: int) -> str:
    return "\n".join(
        f'ALTER TABLE {table} ALTER COLUMN "{column}" SET STATISTICS {target};'
        for table, columns in UNPLANNED.items() for column in [*EVERY_TABLE, *columns]
    )


class Migration(migrations.Migration):
    dependencies = [("roster", "0011_sourced_ids_byte_wise")]

    operations = [migrations.RunSQL(_statistics(0), _statistics(-1))]
