"""Benchmark: LTI Advantage services under gunicorn on PostgreSQL, printing JSON.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/h_lti \
    REDIS_URL=redis://127.0.0.1:6379/11 \
        .venv/bin/python -m benchmarks.lti_services --clients 8 --seconds 10

Sets up (idempotently) a school with one class of 40 members (39 pupils and a teacher) and
an LTI tool approved for Names and Roles and AGS (pseudonymised, with the given-name claim,
so every member id is an HMAC computed in SQL). Starts gunicorn with the shipped
configuration and measures, from outside over HTTP, with ``--clients`` concurrent clients:

* ``token``: client-credentials grants at /lti/token, each with a freshly signed RS256
  assertion (a new ``jti``), verified, replay-checked and recorded;
* ``nrps``: reads of the whole 40-member class (one page) with one token per client;
* ``scores``: score posts to one line item, each a newer score for one of the pupils, each
  written to the owned gradebook as its own small roster version.

Targets (issue 8): NRPS p99 at most 50 ms, at least 200 score posts per second with 8
concurrent clients.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from benchmarks.rest import free_port, log, start_gunicorn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

TARGET_NRPS_P99_MS = 50
TARGET_SCORES_PER_SECOND = 200
VENDOR = "Benchmark LTI services vendor"
INTEGRATION = "benchmark-lti-services"
MEMBERS = 40
NRPS = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"
AGS = "https://purl.imsglobal.org/spec/lti-ags/scope/"
SCOPES = [NRPS, AGS + "lineitem", AGS + "score", AGS + "result.readonly"]
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
KEY_FILE = ROOT / "var" / "bench-lti-services-key.pem"


from benchmarks.load import HttpClient, run_clients  # noqa: E402


def _django() -> None:
    import django

    django.setup()


def _private_key() -> tuple[str, str]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    if KEY_FILE.exists():
        private_pem = KEY_FILE.read_text()
        key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        private_pem = key.private_bytes(serialization.Encoding.PEM,
                                        serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()).decode()
        KEY_FILE.parent.mkdir(parents=True, exist_ok=True)
        KEY_FILE.write_text(private_pem)
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private_pem, public_pem


def set_up() -> dict:
    """The class, the tool and its context; returns what the clients need."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import transaction
    from django.utils import timezone

    from apps.governance.models import ScopeRequest, ScopeRequestStatus
    from apps.governance.pseudonyms import pseudonymiser_for_vendor
    from apps.lti.models import ToolRegistration
    from apps.lti.services import lti_context_ensure, registration_create
    from apps.roster.models import Class, Enrollment, Org, Role, Source, User
    from apps.vendors.models import Integration, IntegrationKind, IntegrationStatus, Vendor

    call_command("migrate", verbosity=0)
    private_pem, public_pem = _private_key()
    with transaction.atomic():
        source = Source.objects.get_or_create(name="bench-lti-services-sis")[0]
        common = {"source": source, "content_hash": b"b", "valid_from_version": 1}
        for model in (Org, User, Role, Class, Enrollment):
            model.objects.filter(source=source).delete()
        Org.objects.bulk_create([
            Org(sourced_id="bls-dist", name="Bench district", type="district", **common),
            Org(sourced_id="bls-sch", name="Bench school", type="school",
                parent_sourced_id="bls-dist", **common),
        ])
        Class.objects.create(sourced_id="bls-cls", title="Bench class", class_code="BC1",
                             course_sourced_id="bls-c", class_type="scheduled",
                             school_sourced_id="bls-sch", term_sourced_ids=["bls-term"],
                             **common)
        people = [(f"bls-p{i}", "student") for i in range(MEMBERS - 1)] + [("bls-t", "teacher")]
        User.objects.bulk_create([
            User(sourced_id=sid, enabled_user=True, username=sid, given_name=f"Given {sid}",
                 family_name="Bench", primary_org_sourced_id="bls-sch", **common)
            for sid, _ in people
        ])
        Role.objects.bulk_create([
            Role(sourced_id=f"r-{sid}", user_sourced_id=sid, role_type="primary", role=role,
                 org_sourced_id="bls-sch", **common)
            for sid, role in people
        ])
        Enrollment.objects.bulk_create([
            Enrollment(sourced_id=f"e-{sid}", class_sourced_id="bls-cls",
                       school_sourced_id="bls-sch", user_sourced_id=sid, role=role, **common)
            for sid, role in people
        ])
        vendor = Vendor.objects.get_or_create(name=VENDOR)[0]
        existing = ToolRegistration.objects.filter(integration__name=INTEGRATION).first()
        if existing is not None:
            existing.delete()
            ScopeRequest.objects.filter(integration__name=INTEGRATION).delete()
            Integration.objects.filter(name=INTEGRATION).delete()
        integration = Integration.objects.create(
            vendor=vendor, name=INTEGRATION, kind=IntegrationKind.LTI_TOOL,
            status=IntegrationStatus.ACTIVE, pseudonymised=True,
        )
        registration = registration_create(
            integration=integration, login_initiation_url="https://bench-tool.example/login",
            redirect_uris=["https://bench-tool.example/launch"],
            target_link_uris=["https://bench-tool.example/launch"], public_key_pem=public_pem,
        )
        now = timezone.now() - dt.timedelta(hours=1)
        requester = get_user_model().objects.get_or_create(
            username="bench.requester", defaults={"is_staff": True})[0]
        # An approval on record; the approval workflow has its own tests.
        ScopeRequest.objects.create(
            integration=integration, status=ScopeRequestStatus.APPROVED, requested_by=requester,
            services=["lti.launch", "lti.nrps", "lti.ags"], scopes=SCOPES,
            field_classes=["identifier", "directory", "assessment"], fields=[],
            claims=["given_name"], org_sourced_ids=["bls-dist"], justification="benchmark",
            duration_days=365, decided_at=now, approved_at=now,
            expires_at=now + dt.timedelta(days=365),
        )
        deployment = registration.deployments.get()
        context_id = lti_context_ensure(registration=registration, deployment=deployment,
                                        class_sourced_id="bls-cls")
    from django.db import connection

    with connection.cursor() as cursor:  # fresh statistics, as after an import
        cursor.execute("ANALYZE roster_user, roster_role, roster_class, roster_enrollment")
    pseudo = pseudonymiser_for_vendor(vendor.pk)
    return {
        "client_id": registration.client_id, "kid": registration.public_key_kid,
        "private_pem": private_pem, "context_id": str(context_id),
        "pupils": [pseudo.pseudonym(sid) for sid, role in people if role == "student"],
    }


def _signing_key(setup: dict):  # type: ignore[no-untyped-def]
    """The tool's private key, parsed once: parsing a PEM (with its consistency checks) on
    every assertion cost the client more CPU than the server spent answering."""
    if "_key" not in setup:
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        setup["_key"] = load_pem_private_key(setup["private_pem"].encode(), password=None)
    return setup["_key"]


def assertion(root: str, setup: dict) -> str:
    import jwt

    now = int(time.time())
    return jwt.encode(
        {"iss": setup["client_id"], "sub": setup["client_id"], "aud": root + "/lti/token",
         "iat": now, "exp": now + 60, "jti": str(uuid.uuid4())},
        _signing_key(setup), algorithm="RS256", headers={"kid": setup["kid"]})


def get_token(http: HttpClient, root: str, setup: dict) -> str:
    response = http.post("/lti/token", form={
        "grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion(root, setup), "scope": " ".join(SCOPES)})
    if response.status != 200:
        raise RuntimeError(f"token: {response.status} {response.text[:200]}")
    return response.json()["access_token"]


def measure(root: str, setup: dict, *, clients: int, seconds: float) -> dict:
    context = f"/lti/contexts/{setup['context_id']}"

    def authorised(extra: dict[str, str] | None = None) -> HttpClient:
        http = HttpClient(root)
        http.headers = {"Authorization": "Bearer " + get_token(http, root, setup),
                        **(extra or {})}
        return http

    def token_client(_: int) -> Callable[[], None]:
        http = HttpClient(root)
        return lambda: get_token(http, root, setup) and None

    log(f"token: {clients} clients for {seconds}s")
    token = run_clients(token_client, clients=clients, seconds=seconds)

    def nrps_client(_: int) -> Callable[[], None]:
        http = authorised()

        def read() -> None:
            response = http.get(context + "/memberships")
            if response.status != 200 or len(response.json()["members"]) != MEMBERS:
                raise RuntimeError(f"nrps: {response.status} {response.text[:200]}")
        return read

    log(f"nrps: {clients} clients for {seconds}s")
    nrps = run_clients(nrps_client, clients=clients, seconds=seconds)

    created = authorised().post(
        context + "/lineitems",
        body=json.dumps({"label": f"Bench {uuid.uuid4()}", "scoreMaximum": 10}),
        headers={"Content-Type": "application/vnd.ims.lis.v2.lineitem+json"})
    if created.status != 201:
        raise RuntimeError(f"line item: {created.status} {created.text[:200]}")
    scores_path = urlsplit(created.json()["id"]).path + "/scores"

    def score_client(i: int) -> Callable[[], None]:
        http = authorised({"Content-Type": "application/vnd.ims.lis.v1.score+json"})
        mine = setup["pupils"][i::clients]  # no two clients score the same pupil
        state = {"n": 0}

        def post() -> None:
            state["n"] += 1
            body = {"userId": mine[state["n"] % len(mine)], "scoreGiven": state["n"] % 11,
                    "scoreMaximum": 10, "activityProgress": "Completed",
                    "gradingProgress": "FullyGraded",
                    "timestamp": dt.datetime.now(dt.UTC).isoformat()}
            response = http.post(scores_path, body=json.dumps(body))
            if response.status != 204:
                raise RuntimeError(f"score: {response.status} {response.text[:200]}")
        return post

    log(f"scores: {clients} clients for {seconds}s")
    client_cpu = time.process_time()
    scores = run_clients(score_client, clients=clients, seconds=seconds)
    scores["client_cpu_ms_per_request"] = round(
        (time.process_time() - client_cpu) / max(scores["requests"], 1) * 1000, 2)
    return {"token": token, "nrps": nrps, "scores": scores}


def profile_nrps(root: str, setup: dict, *, pages: int, dump: str | None) -> dict:
    """NRPS pages in this process (Django's test client, no HTTP): server CPU and
    statements per page, the relative measures that hold on a shared machine."""
    import cProfile

    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from benchmarks.profiling import backend_cpu_seconds

    client = Client(HTTP_HOST="127.0.0.1")
    answer = client.post("/lti/token", {
        "grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion(root, setup), "scope": " ".join(SCOPES)})
    bearer = {"HTTP_AUTHORIZATION": "Bearer " + answer.json()["access_token"]}
    url = f"/lti/contexts/{setup['context_id']}/memberships"

    def page() -> int:
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url, **bearer)
        if response.status_code != 200 or len(response.json()["members"]) != MEMBERS:
            raise RuntimeError(f"nrps: {response.status_code} {response.content[:200]!r}")
        if os.environ.get("BENCH_SHOW_SQL"):
            for query in queries.captured_queries:
                log(query["sql"][:160].replace("\n", " "))
        return len(queries)

    for _ in range(5):
        page()

    profiler = cProfile.Profile(time.process_time) if dump else None
    cpu = []
    database = backend_cpu_seconds()
    for _ in range(pages):
        started = time.process_time()
        if profiler:
            profiler.enable()
        statements = page()
        if profiler:
            profiler.disable()
        cpu.append(time.process_time() - started)
    database = backend_cpu_seconds() - database
    if profiler:
        profiler.dump_stats(dump)
    grants = max(pages // 3, 1)
    assertions = [assertion(root, setup) for _ in range(grants)]  # the tool's CPU, not ours
    started, grant_database = time.process_time(), backend_cpu_seconds()
    for signed in assertions:
        granted = client.post("/lti/token", {
            "grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": signed, "scope": " ".join(SCOPES)})
        if granted.status_code != 200:
            raise RuntimeError(f"token: {granted.status_code} {granted.content[:200]!r}")
    grant_cpu = (time.process_time() - started) / grants * 1000
    grant_database = (backend_cpu_seconds() - grant_database) / grants * 1000
    return {"token_grant_cpu_ms": round(grant_cpu, 2),
            "token_grant_database_cpu_ms": round(grant_database, 2),
            "pages": pages, "cpu_ms_per_page_mean": round(sum(cpu) / len(cpu) * 1000, 2),
            "database_cpu_ms_per_page": round(database / pages * 1000, 2),
            "cpu_ms_per_page_median": round(sorted(cpu)[len(cpu) // 2] * 1000, 2),
            "statements_per_page": statements}


def profile_scores(root: str, setup: dict, *, posts: int, dump: str | None) -> dict:
    """AGS score posts in this process (Django's test client, no HTTP, committed as in
    production): CPU per post in Python and in its database backend, statements per post."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from benchmarks.profiling import per_operation

    client = Client(HTTP_HOST="127.0.0.1")
    answer = client.post("/lti/token", {
        "grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion(root, setup), "scope": " ".join(SCOPES)})
    bearer = {"HTTP_AUTHORIZATION": "Bearer " + answer.json()["access_token"]}
    context = f"/lti/contexts/{setup['context_id']}"
    created = client.post(context + "/lineitems", json.dumps(
        {"label": f"Bench {uuid.uuid4()}", "scoreMaximum": 10}),
        content_type="application/vnd.ims.lis.v2.lineitem+json", **bearer)
    scores = created.json()["id"].split("://", 1)[1].split("/", 1)[1]
    state = {"n": 0}

    def post() -> int:
        state["n"] += 1
        body = {"userId": setup["pupils"][state["n"] % len(setup["pupils"])],
                "scoreGiven": state["n"] % 11, "scoreMaximum": 10,
                "activityProgress": "Completed", "gradingProgress": "FullyGraded",
                "timestamp": dt.datetime.now(dt.UTC).isoformat()}
        with CaptureQueriesContext(connection) as queries:
            response = client.post(f"/{scores}/scores", json.dumps(body),
                                   content_type="application/vnd.ims.lis.v1.score+json",
                                   **bearer)
        if response.status_code != 204:
            raise RuntimeError(f"score: {response.status_code} {response.content[:200]!r}")
        return len(queries)

    python, database, statements = per_operation(post, posts, dump=dump)
    return {"posts": posts, "python_cpu_ms_per_post": python,
            "database_cpu_ms_per_post": database, "statements_per_post": statements}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=min(2 * (os.cpu_count() or 1) + 1, 8))
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="instead: N NRPS pages in process; CPU and statements per page")
    parser.add_argument("--profile-dump", default=None, help="with --profile: cProfile file")
    parser.add_argument("--profile-scores", type=int, default=0, metavar="N",
                        help="instead: N AGS score posts in process; CPU and statements per post")
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL"):
        raise SystemExit("set DATABASE_URL to a scratch database")
    port = free_port()
    root = f"http://127.0.0.1:{port}"
    os.environ["INTERCHANGE_PUBLIC_URL"] = root
    os.environ["DJANGO_DEBUG"] = "false"
    _django()
    setup = set_up()
    if args.profile:
        print(json.dumps(profile_nrps(root, setup, pages=args.profile, dump=args.profile_dump)))
        return
    if args.profile_scores:
        print(json.dumps(profile_scores(root, setup, posts=args.profile_scores,
                                        dump=args.profile_dump)))
        return
    server = start_gunicorn(port, args.workers)
    try:
        result = measure(root, setup, clients=args.clients, seconds=args.seconds)
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(json.dumps({
        "clients": args.clients, "workers": args.workers, "members": MEMBERS, **result,
        "targets": {"nrps_p99_ms": TARGET_NRPS_P99_MS,
                    "scores_per_second": TARGET_SCORES_PER_SECOND},
        "meets_targets": (result["nrps"]["p99_ms"] or 1e9) <= TARGET_NRPS_P99_MS
        and result["scores"]["per_second"] >= TARGET_SCORES_PER_SECOND
        and not result["nrps"]["errors"] and not result["scores"]["errors"],
    }))


if __name__ == "__main__":
    main()
