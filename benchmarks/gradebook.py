"""Benchmark: result writes through the OneRoster gradebook under gunicorn, printing JSON.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/h_grade_bench \
    REDIS_URL=redis://127.0.0.1:6379/1 \
        .venv/bin/python -m benchmarks.gradebook --students 2000 --writes 10000

Loads a generated district through the real import pipeline (``benchmarks.rest`` does it,
once per database), approves an assessment integration for gradebook reads and writes
over the whole district, issues its credentials, starts gunicorn with
``docker/gunicorn.conf.py`` (``benchmarks.rest.start_gunicorn``) and, from outside over
HTTP with a real token, has 4 concurrent clients PUT ``--writes`` results in total (one
score per request, as a tool sends them; each a new version of the roster). First the
tool PUTs one line item per class it writes into; the results go to the pupils enrolled in
those classes, round robin, so some PUTs create and later ones replace. With ``--batch N``
the same results go as POSTs of up to N results of one line item (one version each).

With ``--profile N`` it instead makes N result PUTs in process (no HTTP, no gunicorn) and
reports CPU per PUT, in Python and in the database backend, and statements per PUT.

Reports writes per second (all clients) and latency percentiles, the CPU one write costs the
server and the database (read from /proc, so a busy shared machine does not hide it) and the
rate that implies on this machine's CPUs, and checks afterwards that every result is current
and owned by the tool. Targets: >= 300 writes/s, p99 <= 150 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time
from pathlib import Path

from benchmarks.load import HttpClient, run_threads
from benchmarks.rest import (
    ROOT,
    SOURCE,
    _django,
    free_port,
    load_district,
    log,
    set_up_vendor,
    start_gunicorn,
)

INTEGRATION = "benchmark-gradebook"
BASE = "/ims/oneroster/gradebook/v1p2"
OR = "https://purl.imsglobal.org/spec/or/v1p2/scope/"
SCOPES = [OR + s for s in ("gradebook-core.readonly", "gradebook.readonly",
                           "gradebook.createput", "gradebook.createpost", "gradebook.delete")]
TARGETS = {"writes_per_second": 300, "p99_ms": 150}
LINE_ITEMS = 50


def set_up_tool() -> tuple[str, str]:
    """A live assessment integration approved for the gradebook over the whole district."""
    return set_up_vendor(
        False, integration_name=INTEGRATION, vendor_name="Benchmark assessment vendor",
        services=("oneroster.gradebook",), scopes=SCOPES,
        field_classes=("identifier", "assessment"), approvals_required=2,
    )


def targets(line_items: int) -> list[tuple[str, dict, list[str]]]:
    """(line item id, line item body, enrolled pupils) for the first classes with pupils."""
    from apps.roster.models import AcademicSession, Category, Class, Enrollment

    category = Category.objects.filter(valid_to_version__isnull=True).order_by("sourced_id")[0]
    out = []
    classes = Class.objects.filter(valid_to_version__isnull=True).order_by("sourced_id")
    for klass in classes.iterator():
        pupils = list(Enrollment.objects.filter(
            valid_to_version__isnull=True, role="student", class_sourced_id=klass.sourced_id,
        ).order_by("user_sourced_id").values_list("user_sourced_id", flat=True))
        if not pupils:
            continue
        term = klass.term_sourced_ids[0]
        if not AcademicSession.objects.filter(sourced_id=term).exists():
            continue
        sid = f"bench-li-{klass.sourced_id}"
        body = {"lineItem": {
            "title": f"Benchmark quiz {klass.sourced_id}", "assignDate": "2026-01-05",
            "dueDate": "2026-01-12", "class": {"sourcedId": klass.sourced_id},
            "category": {"sourcedId": category.sourced_id},
            "academicSession": {"sourcedId": term}, "resultValueMin": 0, "resultValueMax": 20,
        }}
        out.append((sid, body, pupils))
        if len(out) == line_items:
            break
    if not out:
        raise SystemExit("the district has no class with pupils")
    return out


def _cpu_seconds(pid: int, *, children: bool) -> float:
    """CPU time of a process (and of its reaped children) from /proc, in seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    if children:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                out.append(int(entry.name))
    return out


def server_cpu_seconds(server_pid: int) -> float:
    """CPU used so far by gunicorn (arbiter, live and recycled workers) and by the database
    backends serving this database: what one write costs, whatever else the machine runs."""
    from django.db import connection

    total = _cpu_seconds(server_pid, children=True)
    total += sum(_cpu_seconds(pid, children=False) for pid in _children(server_pid))
    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                       "AND pid <> pg_backend_pid()")
        backends = [row[0] for row in cursor.fetchall()]
    return total + sum(_cpu_seconds(pid, children=False) for pid in backends)


class Writer:
    def __init__(self, root: str, token: str) -> None:
        self.http = HttpClient(root + BASE, headers={"Authorization": f"Bearer {token}",
                                                     "Content-Type": "application/json"})

    def put(self, path: str, body: dict, method: str = "PUT") -> float:
        started = time.perf_counter()
        response = self.http.request(method, path, body=json.dumps(body))
        elapsed = (time.perf_counter() - started) * 1000
        if response.status not in (200, 201):
            raise SystemExit(f"{method} {path}: {response.status} {response.text[:400]}")
        return elapsed


def write_results(root: str, token: str, work: list[tuple[str, dict, list[str]]], *,
                  writes: int, clients: int, batch: int = 1) -> dict:
    """``writes`` results spread over ``clients`` threads: one PUT each, or with ``batch``
    above 1, POSTs of up to ``batch`` results of one line item; latencies in ms."""
    jobs: list[tuple[str, str, dict, int]] = []
    slots = [(sid, pupil) for sid, _, pupils in work for pupil in pupils]
    pending: dict[str, list[dict]] = {}
    for n in range(writes):
        sid, pupil = slots[n % len(slots)]
        result = {
            "lineItem": {"sourcedId": sid}, "student": {"sourcedId": pupil},
            # a score above resultValueMax now and then, as tools do
            "scoreStatus": "fully graded", "score": (n * 7) % 23, "scoreDate": "2026-01-13",
        }
        if batch <= 1:
            jobs.append(("PUT", f"/results/bench-r-{sid}-{pupil}", {"result": result}, 1))
            continue
        group = pending.setdefault(sid, [])
        if any(r["student"]["sourcedId"] == pupil for r in group) or len(group) == batch:
            jobs.append(("POST", f"/lineItems/{sid}/results", {"results": group}, len(group)))
            group = pending[sid] = []
        group.append({"sourcedId": f"bench-r-{sid}-{pupil}", **result})
    for sid, group in pending.items():
        if group:
            jobs.append(("POST", f"/lineItems/{sid}/results", {"results": group}, len(group)))
    latencies: list[float] = []
    lock = threading.Lock()
    failures: list[BaseException] = []

    def run(index: int) -> None:
        writer = Writer(root, token)
        mine = []
        try:
            for method, path, body, _ in jobs[index::clients]:
                mine.append(writer.put(path, body, method))
        except BaseException as exc:  # noqa: BLE001 - reported after the join
            failures.append(exc)
        with lock:
            latencies.extend(mine)

    client_cpu = time.process_time()
    seconds = run_threads(run, [(i,) for i in range(clients)])
    client_cpu = time.process_time() - client_cpu
    if failures:
        raise SystemExit(f"a client failed: {failures[0]}")
    latencies.sort()
    written = sum(count for *_, count in jobs)
    return {
        "clients": clients, "requests": len(latencies), "batch": batch, "writes": written,
        "seconds": round(seconds, 2), "writes_per_second": round(written / seconds, 1),
        "p50_ms": round(statistics.median(latencies), 1),
        "p95_ms": round(latencies[int(len(latencies) * 0.95) - 1], 1),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1], 1),
        "max_ms": round(latencies[-1], 1),
        # the clients share the server's two cores: what they cost is not the server's
        "client_cpu_ms_per_request": round(client_cpu / max(len(latencies), 1) * 1000, 2),
        "distinct_results": len({r.get("sourcedId", path) for _, path, body, _ in jobs
                                 for r in body.get("results", [{}])}),
    }


def check_written(work: list[tuple[str, dict, list[str]]]) -> dict:
    from apps.roster.gradebook import INTEGRATION_SOURCE_PREFIX
    from apps.roster.models import Result, RosterVersion, Source
    from apps.vendors.models import Integration

    integration = Integration.objects.get(name=INTEGRATION)
    source = Source.objects.get(name=f"{INTEGRATION_SOURCE_PREFIX}{integration.pk}")
    current = Result.objects.filter(valid_to_version__isnull=True, source=source,
                                    sourced_id__startswith="bench-r-").count()
    return {"current_results": current,
            "versions": RosterVersion.objects.filter(source=source).count()}


def profile_puts(client_id: str, secret: str, work: list[tuple[str, dict, list[str]]], *,
                 puts: int, dump: str | None) -> dict:
    """``puts`` result PUTs in this process (Django's test client, no HTTP, committed as
    in production): CPU per PUT in Python and in its database backend, and statements per
    PUT; the relative measures that hold on a shared machine."""
    import base64

    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from benchmarks.profiling import per_operation

    client = Client(HTTP_HOST="127.0.0.1")
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    answer = client.post("/oauth/token", {"grant_type": "client_credentials"},
                         HTTP_AUTHORIZATION=f"Basic {basic}")
    bearer = {"HTTP_AUTHORIZATION": "Bearer " + answer.json()["access_token"]}
    slots = [(sid, pupil) for sid, _, pupils in work for pupil in pupils]
    for sid, body, _ in work:
        client.put(BASE + f"/lineItems/{sid}", json.dumps(body),
                   content_type="application/json", **bearer)
    # scores never sent before (not even by an earlier run): every PUT writes a version
    state = {"n": time.time_ns() // 1000 % 10**9}

    def put() -> int:
        state["n"] += 1
        sid, pupil = slots[state["n"] % len(slots)]
        body = {"result": {"lineItem": {"sourcedId": sid}, "student": {"sourcedId": pupil},
                           "scoreStatus": "fully graded", "score": state["n"],
                           "scoreDate": "2026-01-13"}}
        with CaptureQueriesContext(connection) as queries:
            response = client.put(BASE + f"/results/bench-r-{sid}-{pupil}", json.dumps(body),
                                  content_type="application/json", **bearer)
        if response.status_code not in (200, 201):
            raise SystemExit(f"PUT: {response.status_code} {response.content[:300]!r}")
        if os.environ.get("BENCH_SHOW_SQL"):
            for query in queries.captured_queries:
                log(query["sql"][:160].replace("\n", " "))
        return len(queries)

    python, database, statements = per_operation(put, puts, dump=dump)
    return {"puts": puts, "python_cpu_ms_per_put": python,
            "database_cpu_ms_per_put": database, "statements_per_put": statements}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--writes", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--batch", type=int, default=1,
                        help="results per request: 1 PUTs each, more POSTs them together")
    parser.add_argument("--workers", type=int, default=min(2 * (os.cpu_count() or 1) + 1, 8))
    parser.add_argument("--workdir", default=str(ROOT / "var" / "bench"))
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="instead: N result PUTs in process; CPU and statements per PUT")
    parser.add_argument("--profile-dump", default=None, help="with --profile: cProfile file")
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL"):
        raise SystemExit("set DATABASE_URL to a scratch database")
    _django()
    from apps.roster.models import RosterVersion

    # the benchmark's own writes are versions too: a district loaded once is reused
    if RosterVersion.objects.filter(source__name=SOURCE).exists():
        log("district already loaded")
    else:
        load_district(args.students, args.seed, Path(args.workdir))
    client_id, secret = set_up_tool()
    work = targets(LINE_ITEMS)
    if args.profile:
        print(json.dumps(profile_puts(client_id, secret, work, puts=args.profile,
                                      dump=args.profile_dump)))
        return
    port = free_port()
    server = start_gunicorn(port, args.workers)
    root = f"http://127.0.0.1:{port}"
    try:
        import requests

        token_response = requests.post(f"{root}/oauth/token", auth=(client_id, secret),
                                       data={"grant_type": "client_credentials"}, timeout=30)
        token_response.raise_for_status()
        token = token_response.json()["access_token"]
        log(f"{len(work)} line items")
        writer = Writer(root, token)
        for sid, body, _ in work:
            writer.put(f"/lineItems/{sid}", body)
        log(f"{args.writes} results from {args.clients} clients, {args.batch} per request")
        cpu_before = server_cpu_seconds(server.pid)
        results = write_results(root, token, work, writes=args.writes, clients=args.clients,
                                batch=args.batch)
        cpu = server_cpu_seconds(server.pid) - cpu_before
        # Database backends of recycled workers are not counted (gunicorn recycles a worker
        # after about 2,000 requests), so on long runs this is a lower bound.
        results["server_cpu_ms_per_write"] = round(cpu * 1000 / results["writes"], 2)
        results["writes_per_second_if_cpus_were_free"] = round(
            (os.cpu_count() or 1) * results["writes"] / cpu, 1) if cpu else None
    finally:
        server.terminate()
        server.wait(timeout=30)
    written = check_written(work)
    print(json.dumps({
        "students": args.students, "workers": args.workers, "line_items": len(work),
        "results_written": results, "written": written, "targets": TARGETS,
        "meets_targets": {
            "writes_per_second": results["writes_per_second"] >= TARGETS["writes_per_second"],
            "p99": results["p99_ms"] <= TARGETS["p99_ms"],
        },
    }))


if __name__ == "__main__":
    main()
