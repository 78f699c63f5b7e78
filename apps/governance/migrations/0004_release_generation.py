"""Release generations and the triggers that stamp them (see models/generation.py).

Statement-level triggers, so a bulk import or a queryset ``update()`` stamps once per
statement, not once per row; TRUNCATE is covered too (test flushes, restores). A data key
stamps only when it is destroyed, the one change to it that alters a release.
"""

from django.db import migrations, models

# Tables whose every write may change some integration's release.
GOVERNANCE_TABLES = (
    "vendors_vendor",
    "vendors_integration",
    "governance_scoperequest",
    "governance_fieldclassification",
    "governance_exclusion",
    "governance_override",
    "governance_vendorpseudonymkey",
)

FORWARD = [
    "CREATE SEQUENCE governance_release_generation_seq",
    """
    CREATE FUNCTION governance_release_generation_stamp() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO governance_releasegeneration (name, value)
        VALUES (TG_ARGV[0], nextval('governance_release_generation_seq'))
        ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value;
        RETURN NULL;
    END
    $$
    """,
    *(
        f"""
        CREATE TRIGGER release_generation_stamp
        AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table}
        FOR EACH STATEMENT EXECUTE FUNCTION governance_release_generation_stamp('governance')
        """
        for table in GOVERNANCE_TABLES
    ),
    """
    CREATE TRIGGER release_generation_stamp
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON roster_org
    FOR EACH STATEMENT EXECUTE FUNCTION governance_release_generation_stamp('orgs')
    """,
    """
    CREATE TRIGGER release_generation_stamp
    AFTER UPDATE OF destroyed_at ON keys_datakey
    FOR EACH ROW WHEN (OLD.destroyed_at IS DISTINCT FROM NEW.destroyed_at)
    EXECUTE FUNCTION governance_release_generation_stamp('governance')
    """,
    """
    INSERT INTO governance_releasegeneration (name, value) VALUES
        ('governance', nextval('governance_release_generation_seq')),
        ('orgs', nextval('governance_release_generation_seq'))
    """,
]

BACKWARD = [
    *(f"DROP TRIGGER IF EXISTS release_generation_stamp ON {table}"
      for table in (*GOVERNANCE_TABLES, "roster_org", "keys_datakey")),
    "DROP FUNCTION IF EXISTS governance_release_generation_stamp()",
    "DROP SEQUENCE IF EXISTS governance_release_generation_seq",
]


class Migration(migrations.Migration):

    dependencies = [
        ("governance", "0003_pseudonym_map_version"),
        ("vendors", "0001_initial"),
        ("keys", "0001_initial"),
        ("roster", "0003_required_list_columns"),
    ]

    operations = [
        migrations.CreateModel(
            name="ReleaseGeneration",
            fields=[
                ("name", models.CharField(max_length=20, primary_key=True, serialize=False)),
                ("value", models.BigIntegerField()),
            ],
            options={
                "verbose_name": "release generation",
            },
        ),
        migrations.RunSQL(sql=FORWARD, reverse_sql=BACKWARD),
    ]
