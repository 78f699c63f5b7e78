"""Benchmark: export and verify a control pack for a vendor with a large disclosure ledger.

Prints one JSON object: seconds to build the pack (with the PDF report, and without), seconds
to verify it, its size, and peak RSS. The pack summarises the ledger in SQL (distinct people
per integration, channel and month), so build time should grow with the ledger's size but
memory should not.

    DATABASE_URL=... .venv/bin/python -m benchmarks.control_pack [--people 100000] [--days 5]

It never writes to DATABASE_URL's database itself: it creates a throwaway database next to it
(test_bench_pack_<pid>), migrates it, and drops it at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

DISCLOSURES_SQL = """
INSERT INTO audit_disclosure
    (user_sourced_id, vendor_id, integration_id, channel, field_classes, first_day, last_day)
SELECT 'u' || p, %(vendor)s, %(integration)s, %(channel)s, 3,
       current_date - (d * 30), current_date - (d * 30) + 20
FROM generate_series(1, %(people)s) AS p, generate_series(0, %(runs)s - 1) AS d
"""
HOURLY_SQL = """
INSERT INTO audit_accesshourly
    (integration_id, channel, endpoint, hour, requests, errors, records, duration_ms_total,
     duration_ms_max)
SELECT %(integration)s, %(channel)s, '/ims/oneroster/rostering/v1p2/users',
       date_trunc('hour', now()) - (h * interval '1 hour'), 12, 0, 1200, 900, 120
FROM generate_series(0, %(hours)s - 1) AS h
"""


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=100_000,
                        help="distinct people disclosed per integration")
    parser.add_argument("--runs", type=int, default=5,
                        help="disclosure runs (months) per person and integration")
    parser.add_argument("--hours", type=int, default=24 * 365, help="hours of access history")
    args = parser.parse_args()

    import django

    django.setup()
    from django.db import connection
    from django.utils import timezone

    from apps.offboarding.packs import control_pack_build
    from apps.offboarding.verify import control_pack_verify
    from apps.vendors.models import Integration, IntegrationKind, Vendor

    connection.settings_dict["TEST"]["NAME"] = f"test_bench_pack_{os.getpid()}"
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        vendor = Vendor.objects.create(name="Bench Vendor")
        integrations = [
            Integration.objects.create(vendor=vendor, name=f"Bench {kind}", kind=kind,
                                       status="active")
            for kind in (IntegrationKind.ONEROSTER_REST, IntegrationKind.LTI_TOOL)
        ]
        start = time.perf_counter()
        with connection.cursor() as cursor:
            for integration, channel in zip(integrations, ("oneroster_rest", "lti_launch"),
                                            strict=True):
                cursor.execute(DISCLOSURES_SQL, {"vendor": vendor.pk,
                                                 "integration": integration.pk,
                                                 "channel": channel, "people": args.people,
                                                 "runs": args.runs})
                cursor.execute(HOURLY_SQL, {"integration": integration.pk, "channel": channel,
                                            "hours": args.hours})
            cursor.execute("ANALYZE audit_disclosure; ANALYZE audit_accesshourly")
        load_seconds = time.perf_counter() - start

        def build(pdf: bool) -> tuple[float, bytes]:
            from apps.offboarding import packs

            original = packs.report_pdf
            if not pdf:
                packs.report_pdf = lambda html: None  # type: ignore[assignment]
            try:
                began = time.perf_counter()
                built = control_pack_build(vendor=vendor, actor=None)
                return time.perf_counter() - began, built.content
            finally:
                packs.report_pdf = original

        without_pdf, _ = build(pdf=False)
        with_pdf, content = build(pdf=True)
        with tempfile.NamedTemporaryFile(suffix=".zip") as handle:
            handle.write(content)
            handle.flush()
            began = time.perf_counter()
            report = control_pack_verify(handle.name)
            verify_seconds = time.perf_counter() - began
        print(json.dumps({
            "benchmark": "control_pack",
            "at": timezone.now().isoformat(),
            "disclosure_rows": args.people * args.runs * len(integrations),
            "access_hourly_rows": args.hours * len(integrations),
            "load_seconds": round(load_seconds, 2),
            "build_seconds_without_pdf": round(without_pdf, 2),
            "build_seconds_with_pdf": round(with_pdf, 2),
            "verify_seconds": round(verify_seconds, 3),
            "pack_bytes": len(content),
            "valid": report.valid,
            "peak_rss_mib": round(peak_rss_mib(), 1),
        }))
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
