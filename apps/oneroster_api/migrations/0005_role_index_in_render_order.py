"""A user's current roles by (user, org, roleType, role) in code-point order.

Replaces the user-only index: a users page renders each user's roles from an ordered
subquery, and with this index the order is the scan's own, so no sort runs per record.
The release's visibility test (a role at an org in scope) is answered from the same index.
"""

from django.db import migrations

CREATE = (
    "CREATE INDEX IF NOT EXISTS oneroster_role_user_org ON roster_role "
    '(user_sourced_id, org_sourced_id COLLATE "C", role_type COLLATE "C", role COLLATE "C") '
    "WHERE valid_to_version IS NULL"
)
OLD = (
    "CREATE INDEX IF NOT EXISTS oneroster_role_user_sourced_id ON roster_role "
    "(user_sourced_id) WHERE valid_to_version IS NULL"
)


class Migration(migrations.Migration):
    dependencies = [
        ("oneroster_api", "0004_manage_credentials_permission"),
    ]

    operations = [
        migrations.RunSQL(CREATE, "DROP INDEX IF EXISTS oneroster_role_user_org"),
        migrations.RunSQL("DROP INDEX IF EXISTS oneroster_role_user_sourced_id", OLD),
    ]
