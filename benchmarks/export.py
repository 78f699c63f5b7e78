"""Benchmark: rendering OneRoster CSV bundles from the release policy, printing JSON.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/<scratch> \
        .venv/bin/python -m benchmarks.export --students 200000

Loads a generated district through the real import pipeline (once; reused when present, as
``benchmarks.rest`` does), approves a CSV integration for the whole district (identifier and
directory data) and measures, for a bulk bundle:

* ``render``: rows per second and seconds to produce every CSV file through the release
  policy (``COPY (release SQL) TO STDOUT``, formatting and formula neutralisation included),
  and the peak RSS of the process that rendered (a forked child, so the import's memory
  does not count);
* ``raw_copy``: seconds for a plain ``COPY (SELECT columns FROM table WHERE current) TO
  STDOUT`` of the same entities, and ``ratio`` = render / raw (target <= 2.5);
* ``bundle``: seconds for the whole bundle (render + zip compression + AES-GCM encryption
  at rest) and its size; ``compress_encrypt_seconds`` = bundle - render;
* ``delta``: a delta touching ~1% of students is imported, and the delta bundle since the
  previous version is rendered: rows and seconds, to compare with the bulk (proportional to
  the change, not to the district).

Targets: ratio <= 2.5, peak RSS < 1 GB.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

INTEGRATION = "benchmark-csv"
TARGETS = {"ratio": 2.5, "peak_rss_mb": 1024}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def set_up_integration():  # type: ignore[no-untyped-def]
    from apps.vendors.models import IntegrationKind
    from benchmarks.rest import approve_for_district

    return approve_for_district(
        integration_name=INTEGRATION, vendor_name="Benchmark CSV vendor",
        kind=IntegrationKind.ONEROSTER_CSV, services=("csv.delivery",))


class _Sink:
    """Counts what it is given and keeps nothing."""

    def __init__(self) -> None:
        self.size = 0

    def write(self, data: bytes) -> int:
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        pass


def render_only(integration, *, mode: str, since, until) -> dict:  # type: ignore[no-untyped-def]
    """Every CSV file through the release policy, into a sink (no zip, no encryption)."""
    from apps.delivery import render
    from apps.governance.release import release_for
    from apps.roster import schema

    release = release_for(integration)
    rows = 0
    size = 0
    started = time.perf_counter()
    with render.render_transaction():  # as bundle_write does
        for entity in schema.ENTITIES:
            if not release.columns(entity):
                continue
            statement = render.entity_copy_sql(release, entity, mode=mode, since=since,
                                               until=until, stamp="2030-01-01T00:00:00.000Z")
            if statement is None:
                continue
            for block in render._copy_rows(*statement):  # noqa: SLF001
                rows += 1
                size += len(block)
    return {"seconds": round(time.perf_counter() - started, 3), "rows": rows, "bytes": size}


def raw_copy(integration) -> dict:  # type: ignore[no-untyped-def]
    """The same entities' current rows and columns, by a plain COPY with no policy."""
    from django.db import connection

    from apps.governance.release import release_for
    from apps.roster import schema
    from apps.roster.models import CANONICAL_MODELS

    release = release_for(integration)
    rows = 0
    started = time.perf_counter()
    for entity in schema.ENTITIES:
        columns = [c for c in release.columns(entity)]
        if not columns:
            continue
        table = CANONICAL_MODELS[entity]._meta.db_table
        select = ", ".join(f'"{c}"' for c in columns)
        sql = f"COPY (SELECT {select} FROM {table} WHERE valid_to_version IS NULL) TO STDOUT " \
              "WITH (FORMAT csv)"
        with connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
            for _ in copy:
                rows += 1
    return {"seconds": round(time.perf_counter() - started, 3), "rows": rows}


def _child(queue, integration_id: int, mode: str, since, until) -> None:  # type: ignore[no-untyped-def]
    from django.db import connections

    from apps.vendors.models import Integration

    connections.close_all()
    result = render_only(Integration.objects.get(pk=integration_id), mode=mode, since=since,
                         until=until)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    queue.put(result)


def render_in_child(integration, *, mode: str, since, until) -> dict:  # type: ignore[no-untyped-def]
    from django.db import connections

    connections.close_all()
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_child, args=(queue, integration.pk, mode, since, until))
    child.start()
    result = queue.get(timeout=3600)
    child.join()
    return result


def bundle_full(integration, *, mode: str, since, until) -> dict:  # type: ignore[no-untyped-def]
    from apps.delivery import services
    from apps.delivery.models import Destination, Transport
    from apps.governance.release import release_for

    destination, _ = Destination.objects.get_or_create(
        integration=integration, defaults={"transport": Transport.HTTPS_PULL})
    started = time.perf_counter()
    bundle, result = services.bundle_render(destination=destination,
                                            release=release_for(integration), mode=mode,
                                            since=since, until=until)
    seconds = time.perf_counter() - started
    size = bundle.size_bytes
    services._bundles_purge(type(bundle).objects.filter(pk=bundle.pk))  # noqa: SLF001
    return {"seconds": round(seconds, 3), "rows": result.total_rows, "zip_bytes": size}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--delta-fraction", type=float, default=0.01)
    parser.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "icx-bench"))
    args = parser.parse_args(argv)

    import django

    django.setup()
    from apps.roster.selectors import version_latest_number
    from benchmarks.rest import SOURCE, load_district

    workdir = Path(args.workdir)
    users = load_district(args.students, args.seed, workdir)
    integration = set_up_integration()
    latest = version_latest_number()

    log("rendering the bulk")
    render = render_in_child(integration, mode="bulk", since=None, until=latest)
    raw = raw_copy(integration)
    bundle = bundle_full(integration, mode="bulk", since=None, until=latest)

    log("importing a delta")
    from apps.roster.services import roster_import_run
    from benchmarks.generate_district import generate_delta

    delta_feed = workdir / f"delta-{args.students}-{args.seed}-{latest}.zip"
    stamp = f"2031-01-{1 + latest % 28:02d}T00:00:00.000Z"
    generate_delta(delta_feed, students=args.students, seed=args.seed,
                   fraction=args.delta_fraction, stamp=stamp)
    run = roster_import_run(path=delta_feed, source=SOURCE)
    delta_until = version_latest_number()
    delta_since = latest
    if delta_until == latest and latest > 1:
        # a re-run imports the same delta again (no changes): measure the last change instead
        delta_since = latest - 1
    delta = render_in_child(integration, mode="delta", since=delta_since, until=delta_until)
    delta["import_state"] = run.state

    out = {
        "students": args.students,
        "users": users,
        "render": {**render,
                   "rows_per_second": round(render["rows"] / max(render["seconds"], 1e-9))},
        "raw_copy": raw,
        "ratio": round(render["seconds"] / max(raw["seconds"], 1e-9), 2),
        "bundle": {**bundle,
                   "compress_encrypt_seconds": round(bundle["seconds"] - render["seconds"], 3)},
        "delta": {**delta, "fraction": args.delta_fraction,
                  "rows_vs_bulk": round(delta["rows"] / max(render["rows"], 1), 4),
                  "seconds_vs_bulk": round(delta["seconds"] / max(render["seconds"], 1e-9), 3)},
        "targets": TARGETS,
    }
    out["meets_targets"] = (out["ratio"] <= TARGETS["ratio"]
                            and render["peak_rss_mb"] < TARGETS["peak_rss_mb"])
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
