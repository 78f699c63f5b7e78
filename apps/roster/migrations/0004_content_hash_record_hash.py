"""Re-hash every canonical row with the record hash ingest now uses (staging.hash_sql).

Ingest compares a staged row's hash with the stored row's to find what changed, and rollback
compares stored hashes across versions, so every stored row (current and history) must carry
the new hash: otherwise the next import would see every row as updated. The content columns
are frozen here as they were, since a migration must not follow later code.
"""

from django.db import migrations

# table -> its content columns, in hash order
CONTENT = {
    "roster_org": (
        "name", "type", "identifier", "parent_sourced_id",
    ),
    "roster_academicsession": (
        "title", "type", "start_date", "end_date", "parent_sourced_id", "school_year",
    ),
    "roster_course": (
        "school_year_sourced_id", "title", "course_code", "grades", "org_sourced_id",
        "subjects", "subject_codes",
    ),
    "roster_class": (
        "title", "grades", "course_sourced_id", "class_code", "class_type", "location",
        "school_sourced_id", "term_sourced_ids", "subjects", "subject_codes", "periods",
    ),
    "roster_user": (
        "enabled_user", "username", "user_ids", "given_name", "family_name",
        "middle_name", "identifier", "email", "sms", "phone", "agent_sourced_ids",
        "grades", "user_master_identifier", "preferred_given_name",
        "preferred_middle_name", "preferred_family_name", "primary_org_sourced_id",
        "pronouns",
    ),
    "roster_userprofile": (
        "user_sourced_id", "profile_type", "vendor_id", "application_id", "description",
        "credential_type", "username",
    ),
    "roster_role": (
        "user_sourced_id", "role_type", "role", "begin_date", "end_date",
        "org_sourced_id", "user_profile_sourced_id",
    ),
    "roster_enrollment": (
        "class_sourced_id", "school_sourced_id", "user_sourced_id", "role", "primary",
        "begin_date", "end_date",
    ),
    "roster_demographic": (
        "birth_date", "sex", "american_indian_or_alaska_native", "asian",
        "black_or_african_american", "native_hawaiian_or_other_pacific_islander",
        "white", "demographic_race_two_or_more_races", "hispanic_or_latino_ethnicity",
        "country_of_birth_code", "state_of_birth_abbreviation", "city_of_birth",
        "public_school_residence_status",
    ),
    "roster_category": (
        "title", "weight",
    ),
    "roster_lineitem": (
        "title", "description", "assign_date", "due_date", "class_sourced_id",
        "category_sourced_id", "academic_session_sourced_id", "result_value_min",
        "result_value_max", "school_sourced_id",
    ),
    "roster_result": (
        "line_item_sourced_id", "student_sourced_id", "score_status", "score",
        "score_date", "comment", "text_score", "class_sourced_id", "in_progress",
        "incomplete", "late", "missing",
    ),
    "roster_scorescale": (
        "title", "type", "org_sourced_id", "course_sourced_id", "class_sourced_id",
        "score_scale_value",
    ),
}


def _rehash_sql() -> str:
    statements = []
    for table, columns in CONTENT.items():
        row = "ROW(" + ", ".join(f'c."{c}"' for c in columns) + ")"
        statements.append(
            f"UPDATE {table} c SET content_hash = int8send(hash_record_extended({row}, 0)) "  # noqa: S608
            f"|| int8send(hash_record_extended({row}, 1));"
        )
    return "\n".join(statements)


class Migration(migrations.Migration):
    dependencies = [("roster", "0003_required_list_columns")]

    operations = [migrations.RunSQL(_rehash_sql(), migrations.RunSQL.noop)]
