"""Benchmark: monitoring's telemetry and rules over a district and a year-sized access history.

Prints one JSON object: seconds to record one roster version's telemetry (totals per entity
and counts per org and role, one statement) for a district of N students; seconds to roll up
the daily access telemetry for one day and for 30 days over the hourly aggregate and the
disclosure ledger; and seconds to evaluate every rule once. Targets: telemetry well under the
ingest of the same version (seconds at 200k students); a rollup of today under a second; all
rules under a few seconds, so a five-minute beat is cheap.

    DATABASE_URL=... .venv/bin/python -m benchmarks.monitoring [--students 50000]
        [--integrations 40] [--days 90]

Data are generated with set-based SQL straight into the tables (the ingest and the channels
have their own benchmarks). The benchmark never writes to DATABASE_URL's database: it creates
a throwaway database next to it (test_bench_monitoring_<pid>) and drops it at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

SCHOOLS = 40
CLASSES_PER_STUDENT = 6

ROSTER_SQL = """
INSERT INTO roster_source (name, kind, description, created_at)
VALUES ('bench', 'sis_feed', '', now());
INSERT INTO roster_user (source_id, sourced_id, content_hash, valid_from_version, enabled_user,
                         username, given_name, family_name)
SELECT s.id, 'u' || g, '\\x00', 1, true, 'u' || g, 'G', 'F'
FROM generate_series(1, %(people)s) g, roster_source s WHERE s.name = 'bench';
INSERT INTO roster_role (source_id, sourced_id, content_hash, valid_from_version,
                         user_sourced_id, role_type, role, org_sourced_id)
SELECT s.id, 'r' || g, '\\x00', 1, 'u' || g, 'primary',
       CASE WHEN g <= %(students)s THEN 'student' WHEN mod(g, 2) = 0 THEN 'teacher'
            ELSE 'guardian' END,
       'school-' || mod(g, %(schools)s)
FROM generate_series(1, %(people)s) g, roster_source s WHERE s.name = 'bench';
INSERT INTO roster_enrollment (source_id, sourced_id, content_hash, valid_from_version,
                               class_sourced_id, school_sourced_id, user_sourced_id, role)
SELECT s.id, 'e' || g || '-' || c, '\\x00', 1, 'class-' || mod(g * 7 + c, 2000),
       'school-' || mod(g, %(schools)s), 'u' || g, 'student'
FROM generate_series(1, %(students)s) g, generate_series(1, %(classes)s) c, roster_source s
WHERE s.name = 'bench';
INSERT INTO roster_rosterversion (number, source_id, kind, added, updated, deleted, by_entity,
                                  created_at)
SELECT 1, id, 'import', %(people)s, 0, 0, '{}', now() FROM roster_source WHERE name = 'bench';
ANALYZE;
"""

ACCESS_SQL = """
INSERT INTO audit_accesshourly (integration_id, channel, endpoint, hour, requests, errors,
                                records, duration_ms_total, duration_ms_max)
SELECT i, ch, ep, date_trunc('hour', now()) - make_interval(hours => h), 5 + mod(h, 7), mod(h, 3),
       100 * mod(h, 5), 300, 90
FROM generate_series(1, %(integrations)s) i,
     generate_series(0, %(days)s * 24 - 1) h,
     (VALUES ('oneroster_rest', '/oauth/token'), ('oneroster_rest', '/users'),
             ('lti_launch', '/lti/auth'), ('lti_ags', '/lti/ags/{item}/scores'))
         AS e(ch, ep);
INSERT INTO audit_disclosure (user_sourced_id, vendor_id, integration_id, channel,
                              field_classes, first_day, last_day)
SELECT 'u' || g, i, i, 'oneroster_rest', 3, current_date - %(days)s, current_date
FROM generate_series(1, %(students)s) g, generate_series(1, %(disclosing)s) i;
INSERT INTO audit_accessrecord (occurred_at, integration_id, channel, endpoint, status_code,
                                records, duration_ms, client_id)
SELECT now() - make_interval(secs => g), mod(g, %(integrations)s), 'oneroster_rest',
       '/oauth/token', CASE WHEN mod(g, 10) = 0 THEN 401 ELSE 200 END, 0, 3, 'client-' || mod(g, 50)
FROM generate_series(1, 20000) g;
ANALYZE;
"""


def timed(fn):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    result = fn()
    return round(time.perf_counter() - start, 3), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=50_000)
    parser.add_argument("--integrations", type=int, default=40)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--disclosing", type=int, default=5,
                        help="integrations that disclosed every student")
    args = parser.parse_args()

    import django

    django.setup()
    import datetime as dt

    from django.db import connection
    from django.utils import timezone

    from apps.monitoring import services

    connection.settings_dict["TEST"]["NAME"] = f"test_bench_monitoring_{os.getpid()}"
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        people = int(args.students * 1.2)
        params = {"students": args.students, "people": people, "schools": SCHOOLS,
                  "classes": CLASSES_PER_STUDENT, "integrations": args.integrations,
                  "days": args.days, "disclosing": args.disclosing}
        print("generating the district and the access history...", file=sys.stderr)
        with connection.cursor() as cursor:
            for statement in (ROSTER_SQL + ACCESS_SQL).split(";\n"):
                if statement.strip():
                    cursor.execute(statement, params)
            cursor.execute("SELECT count(*) FROM audit_accesshourly")
            (hourly_rows,) = cursor.fetchone()
            cursor.execute("SELECT id FROM roster_rosterversion")
            (version_id,) = cursor.fetchone()
        telemetry_s, telemetry = timed(
            lambda: services.roster_telemetry_record(version_id=version_id)
        )
        today = timezone.localdate()
        rollup_day_s, _ = timed(lambda: services.access_activity_rollup(start=today, end=today))
        rollup_30_s, rows_30 = timed(lambda: services.access_activity_rollup(
            start=today - dt.timedelta(days=29), end=today))
        rules_s, report = timed(lambda: services.rules_evaluate())
        print(json.dumps({
            "students": args.students,
            "users": telemetry.totals["users"],
            "enrollments": telemetry.totals["enrollments"],
            "counts_rows": telemetry.counts.count(),
            "roster_telemetry_seconds": telemetry_s,
            "access_hourly_rows": hourly_rows,
            "disclosure_rows": args.students * args.disclosing,
            "rollup_one_day_seconds": rollup_day_s,
            "rollup_30_days_seconds": rollup_30_s,
            "rollup_30_days_rows": rows_30,
            "rules_seconds": rules_s,
            "rules_fired": report.fired,
            "rules_failed": report.failed,
        }, indent=2))
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
