"""Benchmark: full LTI launches per second under gunicorn on PostgreSQL, printing JSON.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/h_lti \
    REDIS_URL=redis://127.0.0.1:6379/11 \
        .venv/bin/python -m benchmarks.lti --clients 8 --seconds 20

Sets up (idempotently) a school with ``--pupils`` pupils in classes of 30, portal accounts
linked to them, and an LTI tool registered and approved for the school (pseudonymised, with
the name claims, so every launch computes a pseudonym and minimised personal claims). Starts
gunicorn with the shipped configuration and measures, from outside over HTTP, *full*
launches: each one is

1. the pupil's browser posting the launch form (a single-use message hint is issued),
2. the tool's authentication request to ``/lti/auth`` with a fresh nonce and state,
3. the tool verifying the id_token it receives: RS256 signature against the published JWKS
   (fetched once, as a tool caches it), ``aud`` = its client id, ``iss``, expiry, the nonce
   echoed, the deployment and message type.

Every launch also writes its access record and disclosure entry, as in production.
Target: at least 100 launches/s on a 2-core machine.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import secrets
import sys
from pathlib import Path
from urllib.parse import urlsplit

from benchmarks.rest import free_port, log, start_gunicorn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

TARGET_LAUNCHES_PER_SECOND = 100
PASSWORD = "bench-launch-password"  # noqa: S105 (throwaway benchmark accounts)
REDIRECT_URI = "https://bench-tool.example/launch"
VENDOR = "Benchmark LTI vendor"
INTEGRATION = "benchmark-lti"
LTI = "https://purl.imsglobal.org/spec/lti/claim/"
_FORM = re.compile(r'<form id="lti-autosubmit" method="post" action="([^"]*)">(.*?)</form>', re.S)
_INPUT = re.compile(r'<input type="hidden" name="([^"]*)" value="([^"]*)">')
_CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]*)"')


from benchmarks.load import HttpClient, run_clients  # noqa: E402


def _django() -> None:
    import django

    django.setup()


def set_up(pupils: int, public_url: str) -> tuple[str, list[str]]:
    """The school, accounts and tool; returns (client id, usernames)."""
    import datetime as dt

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.core.management import call_command
    from django.db import transaction
    from django.utils import timezone

    from apps.accounts.models import RosterLink
    from apps.governance.models import ScopeRequest, ScopeRequestStatus
    from apps.keys.models import SigningKey
    from apps.keys.services import signing_key_active
    from apps.lti.models import ToolRegistration
    from apps.lti.services import registration_create
    from apps.roster.models import Class, Enrollment, Org, Role, Source, User
    from apps.vendors.models import Integration, IntegrationKind, IntegrationStatus, Vendor

    call_command("migrate", verbosity=0)
    signing_key_active(purpose=SigningKey.Purpose.LTI)
    existing = ToolRegistration.objects.filter(integration__name=INTEGRATION).first()
    usernames = [f"bench.pupil.{i}" for i in range(pupils)]
    if existing is not None and get_user_model().objects.filter(
        username__in=usernames
    ).count() == pupils:
        return existing.client_id, usernames
    with transaction.atomic():
        source = Source.objects.get_or_create(name="bench-lti-sis")[0]
        common = {"source": source, "content_hash": b"b", "valid_from_version": 1}
        Org.objects.filter(source=source).delete()
        for model in (User, Role, Class, Enrollment):
            model.objects.filter(source=source).delete()
        Org.objects.bulk_create([
            Org(sourced_id="bench-dist", name="Bench district", type="district", **common),
            Org(sourced_id="bench-sch", name="Bench school", type="school",
                parent_sourced_id="bench-dist", **common),
        ])
        classes = (pupils + 29) // 30
        Class.objects.bulk_create([
            Class(sourced_id=f"bench-cls-{c}", title=f"Class {c}", course_sourced_id="bench-c",
                  class_type="scheduled", school_sourced_id="bench-sch",
                  term_sourced_ids=["bench-term"], **common)
            for c in range(classes)
        ])
        User.objects.bulk_create([
            User(sourced_id=f"bench-p{i}", enabled_user=True, username=f"bench.p{i}",
                 given_name=f"Pupil{i}", family_name="Bench", primary_org_sourced_id="bench-sch",
                 **common)
            for i in range(pupils)
        ])
        Role.objects.bulk_create([
            Role(sourced_id=f"bench-r{i}", user_sourced_id=f"bench-p{i}", role_type="primary",
                 role="student", org_sourced_id="bench-sch", **common)
            for i in range(pupils)
        ])
        Enrollment.objects.bulk_create([
            Enrollment(sourced_id=f"bench-e{i}", class_sourced_id=f"bench-cls-{i // 30}",
                       school_sourced_id="bench-sch", user_sourced_id=f"bench-p{i}",
                       role="student", **common)
            for i in range(pupils)
        ])
        accounts = get_user_model()
        accounts.objects.filter(username__startswith="bench.pupil.").delete()
        hashed = make_password(PASSWORD)
        created = accounts.objects.bulk_create([
            accounts(username=name, password=hashed) for name in usernames
        ])
        RosterLink.objects.bulk_create([
            RosterLink(user=user, roster_user_sourced_id=f"bench-p{i}")
            for i, user in enumerate(created)
        ])
        vendor = Vendor.objects.get_or_create(name=VENDOR)[0]
        if existing is not None:
            existing.delete()
            ScopeRequest.objects.filter(integration__name=INTEGRATION).delete()
            Integration.objects.filter(name=INTEGRATION).delete()
        integration = Integration.objects.create(
            vendor=vendor, name=INTEGRATION, kind=IntegrationKind.LTI_TOOL,
            status=IntegrationStatus.ACTIVE, pseudonymised=True,
        )
        public_pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key(
        ).public_bytes(serialization.Encoding.PEM,
                       serialization.PublicFormat.SubjectPublicKeyInfo).decode()
        registration = registration_create(
            integration=integration, login_initiation_url="https://bench-tool.example/login",
            redirect_uris=[REDIRECT_URI], target_link_uris=[REDIRECT_URI],
            public_key_pem=public_pem,
        )
        # An approval on record (the approval workflow has its own tests and benchmark-free
        # rules: two people, paperwork); here only its effect matters.
        now = timezone.now() - dt.timedelta(hours=1)
        requester = accounts.objects.get_or_create(username="bench.requester",
                                                   defaults={"is_staff": True})[0]
        ScopeRequest.objects.create(
            integration=integration, status=ScopeRequestStatus.APPROVED, requested_by=requester,
            services=["lti.launch"], scopes=[], field_classes=[], fields=[],
            claims=["name", "given_name", "family_name"], org_sourced_ids=["bench-dist"],
            justification="benchmark", duration_days=365, decided_at=now, approved_at=now,
            expires_at=now + dt.timedelta(days=365),
        )
    return registration.client_id, usernames


class Pupil:
    """One pupil's browser plus the tool's side of each launch."""

    def __init__(self, root: str, username: str, client_id: str, jwks: dict) -> None:
        self.root, self.client_id = root, client_id
        self.http = HttpClient(root, cookies=True)
        page = self.http.get("/launch/login/")
        token = _CSRF.search(page.text).group(1)  # type: ignore[union-attr]
        response = self.http.post("/launch/login/", form={
            "csrfmiddlewaretoken": token, "username": username, "password": PASSWORD,
            "next": "/launch/"})
        if response.status == 302:  # logged in: the launch page, as the browser follows
            response = self.http.get(urlsplit(response.headers["Location"]).path)
        self.csrf = _CSRF.search(response.text).group(1)  # type: ignore[union-attr]
        self.class_id = re.search(r'data-class="([^"]+)"', response.text).group(1)  # type: ignore[union-attr]
        import jwt

        self.keys = {k["kid"]: jwt.PyJWK(k).key for k in jwks["keys"]}

    @staticmethod
    def _form(text: str) -> tuple[str, dict[str, str]]:
        match = _FORM.search(text)
        if match is None:
            raise RuntimeError("no hand-off form: " + text[:300])
        fields = {html.unescape(k): html.unescape(v) for k, v in _INPUT.findall(match.group(2))}
        return html.unescape(match.group(1)), fields

    def launch(self) -> None:
        import jwt

        _, login = self._form(self.http.post("/launch/start", form={
            "csrfmiddlewaretoken": self.csrf, "client_id": self.client_id,
            "class": self.class_id}).text)
        nonce, state = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
        action, posted = self._form(self.http.get("/lti/auth", params={
            "scope": "openid", "response_type": "id_token", "response_mode": "form_post",
            "prompt": "none", "client_id": self.client_id, "redirect_uri": REDIRECT_URI,
            "login_hint": login["login_hint"], "lti_message_hint": login["lti_message_hint"],
            "nonce": nonce, "state": state}).text)
        token = posted["id_token"]
        key = self.keys[jwt.get_unverified_header(token)["kid"]]
        claims = jwt.decode(token, key, algorithms=["RS256"], audience=self.client_id,
                            issuer=self.root)
        if (action != REDIRECT_URI or posted.get("state") != state or claims["nonce"] != nonce
                or claims[LTI + "deployment_id"] != login["lti_deployment_id"]
                or claims[LTI + "message_type"] != "LtiResourceLinkRequest"):
            raise RuntimeError("launch did not verify")


def measure(root: str, client_id: str, usernames: list[str], *, clients: int,
            seconds: float) -> dict:
    jwks = HttpClient(root).get("/lti/jwks").json()
    pupils = [Pupil(root, usernames[i % len(usernames)], client_id, jwks)
              for i in range(clients)]
    import time

    client_cpu = time.process_time()
    result = run_clients(lambda i: pupils[i].launch, clients=clients, seconds=seconds)
    client_cpu = time.process_time() - client_cpu
    return {
        # the tool and browser side runs on the same two cores as the server
        "client_cpu_ms_per_launch": round(client_cpu / max(result["requests"], 1) * 1000, 2),
        "launches": result["requests"], "errors": result["errors"],
        "first_errors": result["first_errors"], "seconds": result["seconds"],
        "launches_per_second": result["per_second"],
        "p50_ms": result["p50_ms"], "p99_ms": result["p99_ms"],
    }


def profile(client_id: str, usernames: list[str], *, launches: int, dump: str | None) -> dict:
    """Launches in this process (Django's test client, no HTTP): server-side CPU and
    statements per launch, the relative measures that stay meaningful on a shared machine.
    The tool's verification runs outside the timed part; ``dump`` keeps a cProfile."""
    import cProfile
    import time

    import jwt
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from apps.keys.selectors import lti_jwks
    from benchmarks.profiling import backend_cpu_seconds

    keys = {k["kid"]: jwt.PyJWK(k).key for k in lti_jwks()["keys"]}
    host = {"HTTP_HOST": "127.0.0.1"}
    browser = Client(**host)
    from django.contrib.auth import get_user_model

    # force_login: axes wants a request to authenticate, and the login is not measured
    browser.force_login(get_user_model().objects.get(username=usernames[0]))
    class_id = re.search(r'data-class="([^"]+)"',  # type: ignore[union-attr]
                         browser.get("/launch/").content.decode()).group(1)

    def launch(record: list[float]) -> tuple[int, int]:
        started = time.process_time()
        with CaptureQueriesContext(connection) as start:
            page = browser.post("/launch/start", {"client_id": client_id, "class": class_id})
        _, login = Pupil._form(page.content.decode())
        nonce = secrets.token_urlsafe(16)
        with CaptureQueriesContext(connection) as auth:
            answer = browser.get("/lti/auth", {
                "scope": "openid", "response_type": "id_token", "response_mode": "form_post",
                "prompt": "none", "client_id": client_id, "redirect_uri": REDIRECT_URI,
                "login_hint": login["login_hint"], "lti_message_hint": login["lti_message_hint"],
                "nonce": nonce, "state": "s"})
        record.append(time.process_time() - started)
        _, posted = Pupil._form(answer.content.decode())
        token = posted["id_token"]
        claims = jwt.decode(token, keys[jwt.get_unverified_header(token)["kid"]],
                            algorithms=["RS256"], audience=client_id)
        if claims["nonce"] != nonce:
            raise RuntimeError("launch did not verify")
        if os.environ.get("BENCH_SHOW_SQL"):
            for query in [*start.captured_queries, *auth.captured_queries]:
                log(query["sql"][:160].replace("\n", " "))
        return len(start), len(auth)

    warm: list[float] = []
    for _ in range(5):
        launch(warm)
    cpu: list[float] = []
    profiler = cProfile.Profile(time.process_time) if dump else None
    if profiler:
        profiler.enable()
    database = backend_cpu_seconds()
    for _ in range(launches):
        statements = launch(cpu)
    database = backend_cpu_seconds() - database
    if profiler:
        profiler.disable()
        profiler.dump_stats(dump)
    return {
        "launches": launches,
        "cpu_ms_per_launch_mean": round(sum(cpu) / len(cpu) * 1000, 2),
        "database_cpu_ms_per_launch": round(database / launches * 1000, 2),
        "cpu_ms_per_launch_median": round(sorted(cpu)[len(cpu) // 2] * 1000, 2),
        "statements_launch_start": statements[0], "statements_auth": statements[1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pupils", type=int, default=300)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=min(2 * (os.cpu_count() or 1) + 1, 8))
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="instead: N launches in process; CPU and statements per launch")
    parser.add_argument("--profile-dump", default=None, help="with --profile: cProfile file")
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL"):
        raise SystemExit("set DATABASE_URL to a scratch database")
    port = free_port()
    root = f"http://127.0.0.1:{port}"
    os.environ["INTERCHANGE_PUBLIC_URL"] = root
    # gunicorn runs without DEBUG: pages need the collected, hashed static files.
    os.environ.setdefault("INTERCHANGE_STATIC_ROOT", str(ROOT / "var" / "bench-static"))
    os.environ["DJANGO_DEBUG"] = "false"
    _django()
    from django.core.management import call_command

    call_command("collectstatic", interactive=False, verbosity=0)
    client_id, usernames = set_up(args.pupils, root)
    if args.profile:
        print(json.dumps(profile(client_id, usernames, launches=args.profile,
                                 dump=args.profile_dump)))
        return
    server = start_gunicorn(port, args.workers)
    try:
        log(f"launching with {args.clients} clients for {args.seconds}s")
        result = measure(root, client_id, usernames, clients=args.clients,
                         seconds=args.seconds)
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(json.dumps({
        "clients": args.clients, "workers": args.workers, "pupils": args.pupils,
        **result,
        "target_launches_per_second": TARGET_LAUNCHES_PER_SECOND,
        "meets_target": result["launches_per_second"] >= TARGET_LAUNCHES_PER_SECOND
        and result["errors"] == 0,
    }))


if __name__ == "__main__":
    main()
