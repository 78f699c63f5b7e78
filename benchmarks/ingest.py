"""Benchmark: roster ingest against the raw PostgreSQL COPY floor, printing JSON.

    DATABASE_URL=postgresql://... .venv/bin/python -m benchmarks.ingest \
        --students 50000,200000 --reset

For each district size: generate a bulk feed, its rows shuffled (same snapshot), and a
1% delta (benchmarks.generate_district); time a raw ``COPY`` of every CSV of the bulk
feed into unindexed text tables (the physical floor on this machine); then, on an
empty hub, time through the real pipeline (``roster_import_run``: encrypted staging,
parse, COPY, SQL validation, diff, gates, apply):

* ``first``: the first full import into an empty hub;
* ``resync``: the same snapshot with every file's rows shuffled (nothing changed, but
  nothing short-circuits: it is parsed, staged, validated and diffed in full);
* ``delta``: a 1% delta.

Each scenario runs in its own process so its peak RSS is its own, and starts after a
CHECKPOINT (``quiesce``), the raw COPY included. Targets: first <= 6x
the raw COPY, resync <= 4x, delta <= 0.25x, peak RSS < 1 GiB and flat as the district
grows. ``--reset`` empties the roster tables first (refused on a database whose name
does not look like a scratch one unless ``--force``). ``--rounds N`` repeats everything N
times and reports each scenario's median round: on a shared machine one run's ratio can
be off by a tenth.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import random
import resource
import subprocess
import sys
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

TARGETS = {"first": 6.0, "resync": 4.0, "delta": 0.25}
SOURCE = "bench-sis"


def peak_rss_mib() -> float:
    """This process's peak RSS (VmHWM: unlike ru_maxrss, not inherited across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _django() -> None:
    import django

    django.setup()


# --- feeds ----------------------------------------------------------------------------------


def feeds(workdir: Path, students: int, seed: int) -> dict[str, Path]:
    """Generate (once) the bulk, shuffled and delta feeds of a district."""
    from benchmarks.generate_district import generate_delta, generate_district

    workdir.mkdir(parents=True, exist_ok=True)
    paths = {
        "bulk": workdir / f"district-{students}-{seed}.zip",
        "shuffled": workdir / f"district-{students}-{seed}-shuffled.zip",
        "delta": workdir / f"district-{students}-{seed}-delta.zip",
    }
    if not paths["bulk"].exists():
        generate_district(paths["bulk"], students=students, seed=seed)
    if not paths["delta"].exists():
        generate_delta(paths["delta"], students=students, seed=seed, fraction=0.01)
    if not paths["shuffled"].exists():
        shuffle_feed(paths["bulk"], paths["shuffled"], seed=seed)
    return paths


def shuffle_feed(src: Path, dst: Path, *, seed: int) -> None:
    """The same snapshot with each file's data rows in a different order."""
    rng = random.Random(seed)
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename != "manifest.csv":
                rows = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
                body = rows[1:]
                rng.shuffle(body)
                out = io.StringIO()
                csv.writer(out, lineterminator="\n").writerows([rows[0], *body])
                data = out.getvalue().encode("utf-8")
            zout.writestr(info.filename, data)


# --- scenarios (each in its own process) ----------------------------------------------------


def scenario_raw_copy(path: Path) -> dict:
    """COPY every CSV of the feed, as it is, into unindexed text tables."""
    _django()
    from django.db import connection

    rows = 0
    started = time.perf_counter()
    with zipfile.ZipFile(path) as archive, connection.cursor() as cursor:
        for info in archive.infolist():
            if info.filename == "manifest.csv":
                continue
            with archive.open(info) as handle:
                header = next(csv.reader(io.TextIOWrapper(handle, encoding="utf-8")))
            table = f"rawcopy_{info.filename[:-4].lower()}"
            cursor.execute(f"DROP TABLE IF EXISTS {table}")
            columns = ", ".join(f'"{h}" text' for h in header)
            cursor.execute(f"CREATE TABLE {table} ({columns})")
            with archive.open(info) as handle, cursor.copy(
                f"COPY {table} FROM STDIN WITH (FORMAT csv, HEADER true)"
            ) as copy:
                while block := handle.read(1 << 20):
                    copy.write(block)
            rows += cursor.rowcount if cursor.rowcount and cursor.rowcount > 0 else 0
        seconds = time.perf_counter() - started
        for info in archive.infolist():
            if info.filename != "manifest.csv":
                cursor.execute(f"DROP TABLE IF EXISTS rawcopy_{info.filename[:-4].lower()}")
    return {"rows": rows, "seconds": round(seconds, 3), "peak_rss_mib": peak_rss_mib()}


def scenario_import(path: Path) -> dict:
    _django()
    from apps.roster.models import QualityGate
    from apps.roster.services import roster_import_run, source_get_or_create

    # The benchmark measures the pipeline, not a person approving a hold: the gates are
    # evaluated all the same (their cost counts) with thresholds that never hold.
    QualityGate.objects.update_or_create(
        source=source_get_or_create(name=SOURCE),
        defaults={"enabled": True, "max_change_percent": 100, "max_delete_percent": 100,
                  "hold_when_learners_double": False},
    )
    started = time.perf_counter()
    run = roster_import_run(path=path, source=SOURCE)
    seconds = time.perf_counter() - started
    rows = sum((run.counts.get("rows") or {}).values())
    return {
        "rows": rows,
        "seconds": round(seconds, 3),
        "state": run.state,
        "changes": {k: run.changes.get(k, 0) for k in ("added", "updated", "deleted")},
        "timings": run.timings,
        "errors": run.error_count,
        "peak_rss_mib": peak_rss_mib(),
    }


def reset(force: bool) -> None:
    _django()
    from django.db import connection

    from apps.roster.models import CANONICAL_MODELS

    name = connection.settings_dict["NAME"]
    if not force and not any(word in name for word in ("bench", "apply", "test", "scratch")):
        raise SystemExit(f"refusing to empty the roster of database {name!r} (use --force)")
    tables = [m._meta.db_table for m in CANONICAL_MODELS.values()] + [
        "roster_rosteroutbox", "roster_rosterversion", "roster_importrunerror",
        "roster_importrun", "roster_mappingruleset", "roster_qualitygate", "roster_source",
    ]
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
        for table in tables:
            cursor.execute(f"VACUUM ANALYZE {table}")


def quiesce() -> None:
    """CHECKPOINT, so that no scenario pays for the writes of the one before it (a first
    import leaves a gigabyte of WAL and dirty pages for the checkpointer to write while the
    next scenario runs). Skipped where the role may not checkpoint."""
    _django()
    from django.db import DatabaseError, connection

    try:
        with connection.cursor() as cursor:
            cursor.execute("CHECKPOINT")
    except DatabaseError:
        pass


def _child(kind: str, path: Path) -> dict:
    quiesce()
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.ingest", "--scenario", kind, "--feed", str(path)],
        check=True, capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _rate(result: dict) -> dict:
    seconds = result["seconds"] or 1e-9
    return {**result, "rows_per_second": round(result["rows"] / seconds)}


def bench_size(students: int, *, seed: int, workdir: Path, force: bool,
               rounds: int = 1) -> dict:
    """Each round empties the hub, times the raw COPY, then the three scenarios against
    it. With several rounds, each scenario reports the round of median ratio (a round's
    ratio is against the raw COPY timed minutes apart, not at another hour of a shared
    machine's day) and every round's seconds and ratio."""
    started = time.perf_counter()
    paths = feeds(workdir, students, seed)
    load_before = [round(x, 2) for x in os.getloadavg()]
    generated = round(time.perf_counter() - started, 1)
    runs: list[dict[str, dict]] = []
    for _ in range(rounds):
        reset(force)
        raw = _rate(_child("raw_copy", paths["bulk"]))
        results = {"raw_copy": raw}
        for name, feed in (("first", "bulk"), ("resync", "shuffled"), ("delta", "delta")):
            result = _rate(_child("import", paths[feed]))
            result["ratio_to_raw_copy"] = round(result["seconds"] / raw["seconds"], 3)
            result["target_ratio"] = TARGETS[name]
            result["meets_target"] = result["ratio_to_raw_copy"] <= TARGETS[name]
            results[name] = result
        runs.append(results)
    results = {"raw_copy": _median(runs, "raw_copy", "seconds")}
    for name in TARGETS:
        results[name] = _median(runs, name, "ratio_to_raw_copy")
    if rounds > 1:
        for name in results:
            results[name]["rounds"] = [
                {k: run[name][k] for k in ("seconds", "ratio_to_raw_copy") if k in run[name]}
                for run in runs
            ]
    # The machine's load (1, 5, 15 minutes) around the runs: absolute times on a shared
    # machine mean little without it.
    return {"students": students, "seed": seed, "feed_bytes": paths["bulk"].stat().st_size,
            "generate_seconds": generated, "rounds": rounds, "scenarios": results,
            "load_average": {"before": load_before,
                             "after": [round(x, 2) for x in os.getloadavg()]}}


def _median(runs: list[dict[str, dict]], name: str, key: str) -> dict:
    """The scenario's result from the round of median ``key`` (of an even number, the
    higher middle one: the less flattering), with the highest peak RSS of any round."""
    ordered = sorted((run[name] for run in runs), key=lambda result: result[key])
    chosen = dict(ordered[len(ordered) // 2])
    chosen["peak_rss_mib"] = max(result["peak_rss_mib"] for result in ordered)
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", default="50000,200000",
                        help="comma list of district sizes (default 50000,200000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", default="var/bench")
    parser.add_argument("--reset", action="store_true", help="empty the roster tables first")
    parser.add_argument("--force", action="store_true")
    parser.add_argument("--rounds", type=int, default=1,
                        help="repeat each size's raw COPY and scenarios; report the median")
    parser.add_argument("--scenario", choices=("raw_copy", "import"), help=argparse.SUPPRESS)
    parser.add_argument("--feed", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.scenario:
        result = (scenario_raw_copy if args.scenario == "raw_copy" else scenario_import)(
            Path(args.feed)
        )
        print(json.dumps(result))
        return 0
    if not args.reset:
        raise SystemExit("the benchmark needs an empty hub: pass --reset (it empties the roster)")
    sizes = [int(s) for s in args.students.split(",")]
    report = {"sizes": [bench_size(n, seed=args.seed, workdir=Path(args.workdir),
                                   force=args.force, rounds=args.rounds) for n in sizes]}
    rss = [size["scenarios"][k]["peak_rss_mib"] for size in report["sizes"]
           for k in ("first", "resync", "delta")]
    report["peak_rss_mib"] = max(rss)
    report["peak_rss_under_1gib"] = max(rss) < 1024
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
