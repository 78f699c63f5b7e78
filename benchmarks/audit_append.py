"""Benchmark: append audit events through audit.record() and verify the chain.

Prints one JSON object: events/second appended (one event per transaction, 100 per transaction,
and from several connections at once), seconds to verify N events, and the process's peak RSS
(verification streams the chain, so it must stay flat whatever N).

    DATABASE_URL=... .venv/bin/python benchmarks/audit_append.py [--events 20000] [--threads 4]

The audit log is append-only for good, so the benchmark never writes to DATABASE_URL's
database itself: it creates a throwaway database next to it (test_bench_audit_<pid>), migrates
it, and drops it at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def rate(count: int, seconds: float) -> float:
    return round(count / seconds, 1) if seconds else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000, help="events in the chain to verify")
    parser.add_argument("--single", type=int, default=1_000, help="events appended one by one")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--per-thread", type=int, default=250)
    args = parser.parse_args()

    import django

    django.setup()
    from django.db import connection, connections, transaction

    from apps.audit import audit
    from apps.audit.verify import audit_chain_verify

    connection.settings_dict["TEST"]["NAME"] = f"test_bench_audit_{os.getpid()}"
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        details = {"integration": 42, "scopes": ["roster-core.readonly"], "note": "x" * 80}

        start = time.perf_counter()
        for _ in range(args.single):
            audit.record(actor=None, action="bench.single", details=details)
        single_seconds = time.perf_counter() - start

        batched = max(args.events - args.single - args.threads * args.per_thread, 0)
        start = time.perf_counter()
        for offset in range(0, batched, 100):
            with transaction.atomic():
                for _ in range(min(100, batched - offset)):
                    audit.record(actor=None, action="bench.batched", details=details)
        batched_seconds = time.perf_counter() - start

        def worker() -> None:
            try:
                for _ in range(args.per_thread):
                    audit.record(actor=None, action="bench.concurrent", details=details)
            finally:
                connections.close_all()

        threads = [threading.Thread(target=worker) for _ in range(args.threads)]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        concurrent_seconds = time.perf_counter() - start

        rss_before_verify = peak_rss_mib()
        start = time.perf_counter()
        report = audit_chain_verify()
        verify_seconds = time.perf_counter() - start
        if not report.intact:
            raise SystemExit(f"chain broken: {report}")

        print(
            json.dumps(
                {
                    "events_per_second_one_per_transaction": rate(args.single, single_seconds),
                    "events_per_second_100_per_transaction": rate(batched, batched_seconds),
                    "events_per_second_concurrent": rate(
                        args.threads * args.per_thread, concurrent_seconds
                    ),
                    "threads": args.threads,
                    "events_verified": report.events,
                    "verify_seconds": round(verify_seconds, 3),
                    "verify_events_per_second": rate(report.events, verify_seconds),
                    "peak_rss_mib_before_verify": round(rss_before_verify, 1),
                    "peak_rss_mib": round(peak_rss_mib(), 1),
                },
                indent=2,
            )
        )
    finally:
        connections.close_all()
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
