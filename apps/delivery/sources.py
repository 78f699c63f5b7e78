"""Source connectors: a SIS's SFTP drop and a SIS's OneRoster 1.2 REST provider.

Both end in the same place as an upload: ``import_run_create`` (staged encrypted) and
``import_run_process`` (parse, validate, gates, apply), so every rule of the ingest
pipeline holds for them. A file is taken once: its content hash is remembered per source
(``SourcePickup``, unique), so a file that is still on the server at the next poll, or
that reappears under another name, is not imported again. A REST pull is turned into a
OneRoster CSV bulk zip (the canonical exchange form) with fixed zip timestamps, so an
unchanged SIS produces identical bytes and is skipped the same way.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import tempfile
import time
import zipfile
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode, urljoin

import requests
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.audit import audit
from apps.delivery import sftp
from apps.delivery.models import SisSource, SourcePickup, SourceTransport
from apps.delivery.secrets import (
    PURPOSE_SOURCE_KEY,
    PURPOSE_SOURCE_SECRET,
    secret_unwrap,
    secret_wrap,
)
from apps.roster import schema
from apps.roster.models import ImportOrigin, ImportRun, Source
from apps.roster.services import import_run_create, import_run_process

REST_TIMEOUT = 30
MAX_PAGES = 100_000

# Error codes.
REST_TOKEN_REFUSED = "rest_token_refused"  # noqa: S105 (an error code)
REST_REQUEST_FAILED = "rest_request_failed"
MESSAGES = {
    REST_TOKEN_REFUSED: "The SIS token endpoint refused the client credentials (HTTP {status}).",
    REST_REQUEST_FAILED: "GET {url} answered HTTP {status}.",
}


class SourceError(Exception):
    def __init__(self, code: str, **params: object) -> None:
        self.code = code
        super().__init__(MESSAGES[code].format(**params))


@transaction.atomic
def sis_source_create(
    *, name: str, roster_source: Source, transport: str, actor: Any,
    sftp_private_key: str = "", rest_client_secret: str = "", **fields: Any,
) -> SisSource:
    """Register a SIS to pull from; secrets are stored wrapped by the master key."""
    if transport == SourceTransport.SFTP:
        sftp.parse_public_key(fields.get("sftp_host_key", ""))
        sftp.load_private_key(sftp_private_key)
    source = SisSource.objects.create(
        name=name, roster_source=roster_source, transport=transport, **fields
    )
    if sftp_private_key:
        blob, key_id = secret_wrap(sftp_private_key, purpose=PURPOSE_SOURCE_KEY,
                                   object_id=str(source.pk))
        source.sftp_private_key_wrapped, source.sftp_private_key_master_key_id = blob, key_id
    if rest_client_secret:
        blob, key_id = secret_wrap(rest_client_secret, purpose=PURPOSE_SOURCE_SECRET,
                                   object_id=str(source.pk))
        source.rest_client_secret_wrapped, source.rest_client_secret_master_key_id = blob, key_id
    source.save()
    audit.record(actor=actor, action="delivery.sis_source_created", target=source,
                 details={"name": name, "transport": transport,
                          "roster_source": roster_source.name})
    return source


def _endpoint(source: SisSource) -> sftp.SftpEndpoint:
    key = secret_unwrap(source.sftp_private_key_wrapped,
                        master_key_id=source.sftp_private_key_master_key_id,
                        purpose=PURPOSE_SOURCE_KEY, object_id=str(source.pk))
    return sftp.SftpEndpoint(host=source.sftp_host, port=source.sftp_port,
                             username=source.sftp_username, host_key=source.sftp_host_key,
                             private_key=key, directory=source.sftp_directory or ".")


def _hash_stream(read: Any) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    while block := read(256 * 1024):
        digest.update(block)
        size += len(block)
    return digest.hexdigest(), size


def _ingest_once(*, source: SisSource, file_name: str, sha256: str, size: int,
                 opener: Any, remote_mtime: int | None = None) -> ImportRun | None:
    """Stage and import one file unless this source already took the same content."""
    if SourcePickup.objects.filter(sis_source=source, sha256=sha256).exists():
        return None
    try:
        with transaction.atomic():
            pickup = SourcePickup.objects.create(sis_source=source, file_name=file_name[:300],
                                                 sha256=sha256, size_bytes=size,
                                                 remote_mtime=remote_mtime)
    except IntegrityError:
        return None  # another poller took it first
    with opener() as src:
        run = import_run_create(src=src, file_name=file_name, source=source.roster_source,
                                origin=ImportOrigin.API)
    SourcePickup.objects.filter(pk=pickup.pk).update(import_run=run)
    return import_run_process(run=run)


SETTLE_SECONDS = 10


def sis_source_sftp_pickup(*, source: SisSource,
                           settle_seconds: int = SETTLE_SECONDS) -> list[ImportRun]:
    """Import each new zip in the SIS's SFTP folder once (by content hash), oldest first.

    Files are left where they are (the SIS owns its folder); the hash makes them harmless.
    A file modified within ``settle_seconds`` may still be being written: it waits for the
    next poll (the roster drop folder's rule).
    """
    endpoint = _endpoint(source)
    runs: list[ImportRun] = []
    now = time.time()
    with sftp.sftp_session(endpoint) as client:
        for remote in sftp.sftp_list_zips(client, endpoint.directory):
            if now - remote.mtime < settle_seconds:
                continue
            if SourcePickup.objects.filter(sis_source=source, file_name=remote.name[:300],
                                           size_bytes=remote.size,
                                           remote_mtime=remote.mtime).exists():
                continue  # listed before, unchanged: no need to download it to hash it
            path = sftp._join(endpoint.directory, remote.name)  # noqa: SLF001
            with client.open(path, "rb") as handle:
                handle.prefetch()
                sha256, size = _hash_stream(handle.read)

            def opener(path: str = path) -> Any:
                handle = client.open(path, "rb")
                handle.prefetch()
                return handle

            run = _ingest_once(source=source, file_name=remote.name, sha256=sha256, size=size,
                               opener=opener, remote_mtime=remote.mtime)
            if run is not None:
                runs.append(run)
    SisSource.objects.filter(pk=source.pk).update(last_polled_at=timezone.now())
    return runs


# --- OneRoster REST pull ----------------------------------------------------------------------

ROSTERING = "/ims/oneroster/rostering/v1p2"
# collection path, JSON wrapper, entity
REST_COLLECTIONS: tuple[tuple[str, str, str], ...] = (
    ("orgs", "orgs", "orgs"),
    ("academicSessions", "academicSessions", "academicSessions"),
    ("courses", "courses", "courses"),
    ("classes", "classes", "classes"),
    ("users", "users", "users"),
    ("enrollments", "enrollments", "enrollments"),
    ("demographics", "demographics", "demographics"),
)
# JSON reference field -> CSV header (single references and lists of references)
REFERENCES = {
    "parent": "parentSourcedId", "org": "orgSourcedId", "course": "courseSourcedId",
    "school": "schoolSourcedId", "schoolYear": "schoolYearSourcedId",
    "user": "userSourcedId", "class": "classSourcedId", "primaryOrg": "primaryOrgSourcedId",
    "userProfile": "userProfileSourcedId",
}
REFERENCE_LISTS = {"terms": "termSourcedIds", "agents": "agentSourcedIds"}
RENAMES = {"preferredFirstName": "preferredGivenName",
           "preferredLastName": "preferredFamilyName"}


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def record_to_row(entity: str, record: dict) -> dict[str, str]:
    """One REST record as a bulk CSV row (keyed by header), per the 1.2 bindings."""
    headers = schema.SCHEMAS[entity].headers_v12
    row: dict[str, str] = {}
    for key, value in record.items():
        if key in REFERENCES and (value is None or isinstance(value, dict)):
            # (academicSessions' schoolYear is a year, courses' a reference)
            row[REFERENCES[key]] = (value or {}).get("sourcedId", "")
        elif key in REFERENCE_LISTS:
            row[REFERENCE_LISTS[key]] = ",".join(v.get("sourcedId", "") for v in value or [])
        elif key == "userIds":
            row["userIds"] = ",".join(f"{{{v.get('type')}:{v.get('identifier')}}}"
                                      for v in value or [])
        elif key in RENAMES:
            row[RENAMES[key]] = _csv_value(value)
        elif key in headers:
            row[key] = _csv_value(value)
    row["status"] = ""  # a bulk snapshot
    row["dateLastModified"] = ""
    return {h: row.get(h, "") for h in headers}


def roles_of(user: dict) -> Iterator[dict[str, str]]:
    """A 1.2 user's embedded roles as roles.csv rows (REST roles carry no sourcedId of
    their own, so one is derived from the user, org and role)."""
    for role in user.get("roles") or []:
        org = (role.get("org") or {}).get("sourcedId", "")
        yield {
            "sourcedId": f"{user['sourcedId']}-{org}-{role.get('role', '')}",
            "status": "", "dateLastModified": "", "userSourcedId": user["sourcedId"],
            "roleType": role.get("roleType", ""), "role": role.get("role", ""),
            "beginDate": role.get("beginDate") or "", "endDate": role.get("endDate") or "",
            "orgSourcedId": org,
            "userProfileSourcedId": (role.get("userProfile") or {}).get("sourcedId", ""),
        }


class RestClient:
    """Client credentials and offset paging against a OneRoster 1.2 provider."""

    def __init__(self, *, base_url: str, token_url: str, client_id: str, client_secret: str,
                 scope: str = "", page_size: int = 500,
                 session: requests.Session | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.token_url = token_url
        self.client_id = client_id
        self.client_secret = client_secret
        self.scope = scope
        self.page_size = page_size
        self.http = session or requests.Session()
        self.token = ""

    def authenticate(self) -> None:
        data = {"grant_type": "client_credentials"}
        if self.scope:
            data["scope"] = self.scope
        response = self.http.post(self.token_url, data=data,
                                  auth=(self.client_id, self.client_secret), timeout=REST_TIMEOUT)
        if response.status_code != 200:
            raise SourceError(REST_TOKEN_REFUSED, status=response.status_code)
        self.token = response.json()["access_token"]

    def collection(self, path: str, wrapper: str) -> Iterator[dict]:
        """Every record of a collection, page by page (offset paging, stable sort)."""
        offset = 0
        for _ in range(MAX_PAGES):
            query = urlencode({"limit": self.page_size, "offset": offset, "sort": "sourcedId"})
            url = f"{self.base_url}{ROSTERING}/{path}?{query}"
            response = self.http.get(url, headers={"Authorization": f"Bearer {self.token}"},
                                     timeout=REST_TIMEOUT)
            if response.status_code == 403 and offset == 0:
                return  # not approved for this collection (e.g. demographics): absent
            if response.status_code != 200:
                raise SourceError(REST_REQUEST_FAILED, url=url, status=response.status_code)
            records = response.json().get(wrapper, [])
            yield from records
            total = response.headers.get("X-Total-Count")
            offset += len(records)
            if not records or len(records) < self.page_size or (
                total is not None and offset >= int(total)
            ):
                return


def rest_snapshot_write(client: RestClient, out: Any) -> dict[str, int]:
    """Pull every collection and write one OneRoster 1.2 bulk zip; returns rows per file."""
    counts: dict[str, int] = {}
    fixed = (1980, 1, 1, 0, 0, 0)
    files: dict[str, list[dict[str, str]]] = {}
    for path, wrapper, entity in REST_COLLECTIONS:
        rows = []
        for record in client.collection(path, wrapper):
            rows.append(record_to_row(entity, record))
            if entity == "users":
                files.setdefault("roles", []).extend(roles_of(record))
        if rows:
            files[entity] = rows
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        manifest = io.StringIO()
        writer = csv.writer(manifest, lineterminator="\n")
        writer.writerow(schema.MANIFEST_HEADERS)
        writer.writerow(["manifest.version", "1.0"])
        writer.writerow(["oneroster.version", "1.2"])
        for entity in schema.ENTITIES:
            writer.writerow([f"file.{entity}", "bulk" if files.get(entity) else "absent"])
        archive.writestr(zipfile.ZipInfo("manifest.csv", fixed), manifest.getvalue())
        for entity in schema.ENTITIES:
            rows = files.get(entity)
            if not rows:
                continue
            text = io.StringIO()
            writer = csv.writer(text, lineterminator="\n")
            headers = schema.SCHEMAS[entity].headers_v12
            writer.writerow(headers)
            for row in sorted(rows, key=lambda r: r["sourcedId"]):
                writer.writerow([row[h] for h in headers])
            info = zipfile.ZipInfo(f"{entity}.csv", fixed)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, text.getvalue())
            counts[entity] = len(rows)
    return counts


def sis_source_rest_pull(*, source: SisSource,
                         session: requests.Session | None = None) -> ImportRun | None:
    """Pull a bulk snapshot from the SIS's OneRoster REST API into the ingest pipeline.

    The snapshot is held in a spooled temporary file (memory first) only until it is staged
    encrypted. Returns None when the SIS has not changed since the last pull.
    """
    secret = secret_unwrap(source.rest_client_secret_wrapped,
                           master_key_id=source.rest_client_secret_master_key_id,
                           purpose=PURPOSE_SOURCE_SECRET, object_id=str(source.pk))
    client = RestClient(base_url=source.rest_base_url,
                        token_url=source.rest_token_url or urljoin(source.rest_base_url,
                                                                   "/oauth/token"),
                        client_id=source.rest_client_id, client_secret=secret,
                        scope=source.rest_scope, page_size=source.rest_page_size,
                        session=session)
    client.authenticate()
    with tempfile.SpooledTemporaryFile(max_size=64 * 1024 * 1024) as snapshot:
        rest_snapshot_write(client, snapshot)
        snapshot.seek(0)
        sha256, size = _hash_stream(snapshot.read)
        snapshot.seek(0)
        stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")

        class _Borrowed:
            def __enter__(self) -> Any:
                return snapshot

            def __exit__(self, *exc: Any) -> None:
                return None

        run = _ingest_once(source=source, file_name=f"{source.name}-rest-{stamp}.zip",
                           sha256=sha256, size=size, opener=_Borrowed)
    SisSource.objects.filter(pk=source.pk).update(last_polled_at=timezone.now())
    return run


SOURCE_ERRORS = (sftp.SftpError, SourceError, requests.RequestException)


def sis_source_poll(*, source: SisSource) -> list[ImportRun]:
    """Pull once from a source, whatever its transport; the import runs it started."""
    if source.transport == SourceTransport.SFTP:
        return sis_source_sftp_pickup(source=source)
    run = sis_source_rest_pull(source=source)
    return [run] if run is not None else []


def sis_sources_poll_due(*, now: dt.datetime | None = None) -> int:
    """Poll each enabled source whose interval elapsed; errors are kept for the next poll."""
    now = now or timezone.now()
    polled = 0
    for source in SisSource.objects.filter(enabled=True, interval_minutes__isnull=False):
        last = source.last_polled_at
        if last is not None and now - last < dt.timedelta(minutes=source.interval_minutes or 0):
            continue
        polled += 1
        try:
            sis_source_poll(source=source)
        except SOURCE_ERRORS as exc:
            from apps.alerts.alerts import raise_alert

            raise_alert(rule="delivery.source_failed",
                        subject=f"Pulling SIS source {source.name} failed",
                        details={"source": source.pk, "error": str(exc)[:500]})
    return polled
