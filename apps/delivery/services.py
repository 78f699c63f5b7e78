"""Delivery services: destinations, runs (the state machine), bundles, links, the relay.

A run never reports success it did not have (DESIGN.md rule 4): it reaches ``delivered``
only after the SFTP server confirmed the renamed file's size, or after the download link
for a stored bundle exists; any error leaves it ``queued`` for a retry (with exponential
backoff and jitter) or, once the attempts are spent or the error is one only a person can
fix (a changed host key), ``failed`` with an alert that stays open until someone resolves
it. Levers are state (rule 3): a paused destination, or an integration that is not live,
is ``skipped`` on its next run, whoever enqueued it.

One run at a time per destination: execution holds a PostgreSQL advisory lock keyed on the
destination, so a redelivered task waits or leaves, never runs beside the first.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import logging
import random
import secrets as pysecrets
import time
import uuid
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from apps.alerts.alerts import raise_alert
from apps.alerts.models import Severity
from apps.audit import audit
from apps.audit.models import Channel
from apps.audit.services import access_record, disclosures_record
from apps.delivery import render, sftp
from apps.delivery.models import (
    RUN_TRANSITIONS,
    Bundle,
    DeliveryRun,
    Destination,
    DestinationState,
    DownloadLink,
    RunMode,
    RunReason,
    RunState,
    Transport,
)
from apps.delivery.secrets import PURPOSE_DESTINATION_KEY, secret_unwrap, secret_wrap
from apps.governance.release import release_for
from apps.keys.files import data_keys_destroy, open_decrypted, open_encrypted
from apps.roster.models import RosterOutbox, RosterVersion
from apps.roster.selectors import version_latest_number
from apps.vendors.models import Integration, IntegrationKind

log = logging.getLogger(__name__)

BUNDLE_PURPOSE = "delivery.bundle"
ADVISORY_LOCK_NAMESPACE = 0x44454C  # "DEL"

# Error codes and messages (tests assert against these).
NOT_CSV_INTEGRATION = "not_csv_integration"
DESTINATION_EXISTS = "destination_exists"
SFTP_SETTINGS_MISSING = "sftp_settings_missing"
DESTINATION_PAUSED = "destination_paused"
DESTINATION_DISABLED = "destination_disabled"
INTEGRATION_NOT_LIVE = "integration_not_live"
SUPERSEDED = "superseded"
SERVICE_NOT_APPROVED = "service_not_approved"
CSV_SERVICE = "csv.delivery"
NO_BULK_FOR_VERSION = "no_bulk_for_version"
UNKNOWN_VERSION = "unknown_version"
RENDER_FAILED = "render_failed"
BAD_TRANSITION = "bad_transition"
REASON_REQUIRED = "reason_required"

MESSAGES = {
    NOT_CSV_INTEGRATION: "Integration {name!r} is not a OneRoster CSV integration (kind {kind}).",
    DESTINATION_EXISTS: "Integration {name!r} already has a destination.",
    SFTP_SETTINGS_MISSING: "An SFTP destination needs {missing}.",
    DESTINATION_PAUSED: "The destination is paused; nothing was sent.",
    DESTINATION_DISABLED: "The destination is disabled (credentials revoked); nothing was sent.",
    INTEGRATION_NOT_LIVE: "The integration is {status} (or its vendor is not active); "
                          "nothing was sent.",
    SUPERSEDED: "Version {version} was already delivered (by run {run}).",
    SERVICE_NOT_APPROVED: "The integration has no live approval for CSV delivery; "
                          "nothing was sent.",
    NO_BULK_FOR_VERSION: "No retained bulk bundle of version {version} exists for this "
                         "destination; roll the roster source back, then deliver a bulk.",
    UNKNOWN_VERSION: "Roster version {version} does not exist.",
    RENDER_FAILED: "The bundle could not be rendered: {detail}",
    BAD_TRANSITION: "A run cannot go from {old} to {new}.",
    REASON_REQUIRED: "Say why (the reason is kept in the audit log).",
}


class DeliveryError(ValueError):
    def __init__(self, code: str, **params: object) -> None:
        self.code = code
        super().__init__(MESSAGES[code].format(**params))


def _setting(name: str, default: Any) -> Any:
    return getattr(settings, name, default)


def max_attempts() -> int:
    return int(_setting("INTERCHANGE_DELIVERY_MAX_ATTEMPTS", 5))


def backoff_seconds(attempt: int) -> float:
    """Exponential backoff with full jitter: base * 2**(attempt-1), capped, times U(0.5, 1)."""
    base = float(_setting("INTERCHANGE_DELIVERY_BACKOFF_SECONDS", 60))
    ceiling = base * 2 ** max(attempt - 1, 0)
    return min(ceiling, 6 * 3600) * random.uniform(0.5, 1.0)  # noqa: S311 (not a secret)


def bundle_dir() -> Path:
    configured = _setting("INTERCHANGE_BUNDLE_DIR", None)
    if configured:
        return Path(configured)
    return Path(settings.INTERCHANGE_STAGING_DIR).parent / "delivery-bundles"


# --- destinations ---------------------------------------------------------------------------


@transaction.atomic
def destination_create(
    *,
    integration: Integration,
    transport: str,
    actor: Any,
    sftp_host: str = "",
    sftp_port: int = 22,
    sftp_username: str = "",
    sftp_directory: str = ".",
    sftp_host_key: str = "",
    sftp_private_key: str = "",
    link_ttl_hours: int = 72,
    link_single_use: bool = True,
    event_driven: bool = True,
    interval_minutes: int | None = None,
    retention_days: int = 7,
) -> Destination:
    """Give a CSV integration its destination; the SFTP private key is stored wrapped."""
    if integration.kind != IntegrationKind.ONEROSTER_CSV:
        raise DeliveryError(NOT_CSV_INTEGRATION, name=integration.name, kind=integration.kind)
    if Destination.objects.filter(integration=integration).exists():
        raise DeliveryError(DESTINATION_EXISTS, name=integration.name)
    if transport == Transport.SFTP:
        missing = [n for n, v in (("a host", sftp_host), ("a username", sftp_username),
                                  ("a pinned host key", sftp_host_key),
                                  ("a private key", sftp_private_key)) if not v]
        if missing:
            raise DeliveryError(SFTP_SETTINGS_MISSING, missing=", ".join(missing))
        sftp.parse_public_key(sftp_host_key)  # refuse what cannot be used, now
        public = sftp.public_key_line(sftp_private_key)
    else:
        public = ""
    destination = Destination.objects.create(
        integration=integration, transport=transport, sftp_host=sftp_host,
        sftp_port=sftp_port, sftp_username=sftp_username, sftp_directory=sftp_directory or ".",
        sftp_host_key=sftp_host_key.strip(), sftp_public_key=public,
        link_ttl_hours=link_ttl_hours, link_single_use=link_single_use,
        event_driven=event_driven, interval_minutes=interval_minutes,
        retention_days=retention_days,
    )
    if sftp_private_key:
        _store_private_key(destination, sftp_private_key)
    audit.record(actor=actor, action="delivery.destination_created", target=destination,
                 details={"integration": integration.name, "transport": transport,
                          "host": sftp_host, "port": sftp_port})
    return destination


def _store_private_key(destination: Destination, private_key: str) -> None:
    blob, key_id = secret_wrap(private_key, purpose=PURPOSE_DESTINATION_KEY,
                               object_id=str(destination.pk))
    Destination.objects.filter(pk=destination.pk).update(
        sftp_private_key_wrapped=blob, sftp_private_key_master_key_id=key_id,
        sftp_public_key=sftp.public_key_line(private_key),
    )
    destination.sftp_private_key_wrapped = blob
    destination.sftp_private_key_master_key_id = key_id


@transaction.atomic
def destination_sftp_key_set(*, destination: Destination, private_key: str, host_key: str = "",
                             actor: Any) -> Destination:
    """Replace the client key (and optionally re-pin the host key), audited."""
    sftp.load_private_key(private_key)
    if host_key:
        sftp.parse_public_key(host_key)
        Destination.objects.filter(pk=destination.pk).update(sftp_host_key=host_key.strip())
    _store_private_key(destination, private_key)
    audit.record(actor=actor, action="delivery.destination_keys_changed", target=destination,
                 details={"host_key_changed": bool(host_key)})
    destination.refresh_from_db()
    return destination


def destination_endpoint(destination: Destination) -> sftp.SftpEndpoint:
    private_key = secret_unwrap(
        destination.sftp_private_key_wrapped,
        master_key_id=destination.sftp_private_key_master_key_id,
        purpose=PURPOSE_DESTINATION_KEY, object_id=str(destination.pk),
    )
    return sftp.SftpEndpoint(
        host=destination.sftp_host, port=destination.sftp_port,
        username=destination.sftp_username, host_key=destination.sftp_host_key,
        private_key=private_key, directory=destination.sftp_directory or ".",
    )


def _state_set(*, destination: Destination, state: str, actor: Any, reason: str,
               action: str) -> Destination:
    if not reason.strip():
        raise DeliveryError(REASON_REQUIRED)
    locked = Destination.objects.select_for_update().get(pk=destination.pk)
    if locked.state == DestinationState.DISABLED:
        raise DeliveryError(DESTINATION_DISABLED)
    old = locked.state
    locked.state = state
    locked.state_reason = reason.strip()
    locked.save(update_fields=["state", "state_reason", "updated_at"])
    audit.record(actor=actor, action=action, target=locked,
                 details={"from": old, "to": state, "reason": reason.strip()})
    return locked


@transaction.atomic
def destination_pause(*, destination: Destination, actor: Any, reason: str) -> Destination:
    """Stop deliveries from the next run on; runs already queued are skipped when reached."""
    return _state_set(destination=destination, state=DestinationState.PAUSED, actor=actor,
                      reason=reason, action="delivery.destination_paused")


@transaction.atomic
def destination_resume(*, destination: Destination, actor: Any, reason: str) -> Destination:
    """Deliver again from the next run on, and queue a catch-up run for what was skipped
    while paused (the caller drains it)."""
    resumed = _state_set(destination=destination, state=DestinationState.ACTIVE, actor=actor,
                         reason=reason, action="delivery.destination_resumed")
    catch_up_enqueue(destination=resumed)
    return resumed


LEVER_SKIPS = frozenset({DESTINATION_PAUSED, INTEGRATION_NOT_LIVE})


def catch_up_enqueue(*, destination: Destination) -> DeliveryRun | None:
    """A run for the latest version when the destination is behind, unless one is live or
    the last one failed (a failure stays red until someone acts). A run of that version
    skipped earlier (paused, or the integration suspended) is queued again."""
    latest = version_latest_number()
    delivered = destination.last_delivered_version
    if delivered is not None and delivered >= latest:
        return None
    runs = DeliveryRun.objects.filter(destination=destination)
    if runs.filter(state__in=[RunState.QUEUED, RunState.RENDERING, RunState.DELIVERING]).exists():
        return None
    last = runs.order_by("-created_at").values_list("state", flat=True).first()
    if last == RunState.FAILED:
        return None
    run, _ = delivery_run_enqueue(destination=destination, reason=RunReason.SCHEDULE,
                                  version=latest)
    # only what a lever skipped (not, say, a missing approval, which the next run would
    # skip again)
    if run.state == RunState.SKIPPED and run.error_code in LEVER_SKIPS:
        with transaction.atomic():
            locked = DeliveryRun.objects.select_for_update().get(pk=run.pk)
            if locked.state == RunState.SKIPPED:
                _transition(locked, RunState.QUEUED)
                locked.error_code = locked.error = ""
                locked.finished_at = None
                locked.save()
            run = locked
    return run if run.state == RunState.QUEUED else None


@transaction.atomic
def destinations_revoke(*, integration: Integration, actor: Any, reason: str) -> dict[str, int]:
    """Offboarding: disable the integration's destination, revoke its links, shred its
    bundles (their data keys are destroyed) and skip its queued runs."""
    now = timezone.now()
    destinations = list(
        Destination.objects.select_for_update().filter(integration=integration)
    )
    ids = [d.pk for d in destinations]
    disabled = Destination.objects.filter(pk__in=ids).exclude(
        state=DestinationState.DISABLED
    ).update(state=DestinationState.DISABLED, state_reason=reason or "credentials revoked")
    links = DownloadLink.objects.filter(
        destination_id__in=ids, revoked_at__isnull=True
    ).update(revoked_at=now)
    skipped = DeliveryRun.objects.filter(
        destination_id__in=ids, state=RunState.QUEUED
    ).update(state=RunState.SKIPPED, error_code=DESTINATION_DISABLED,
             error=MESSAGES[DESTINATION_DISABLED], finished_at=now)
    bundles = _bundles_purge(Bundle.objects.filter(destination_id__in=ids), actor=actor,
                             reason=reason or "credentials revoked")
    summary = {"destinations": disabled, "links": links, "bundles": bundles,
               "runs_skipped": skipped}
    for destination in destinations:
        audit.record(actor=actor, action="delivery.destination_revoked", target=destination,
                     details={"reason": reason, **summary})
    return summary


# --- runs: enqueue, replay, rollback ----------------------------------------------------------


def _key(destination: Destination, kind: str, version: int | None) -> str:
    return f"{destination.pk}:{kind}:v{version if version is not None else 'latest'}"


def delivery_run_enqueue(
    *, destination: Destination, reason: str = RunReason.MANUAL, version: int | None = None,
    force_bulk: bool = False, actor: Any = None,
) -> tuple[DeliveryRun, bool]:
    """Ask for a delivery of ``version`` (default: the latest) to ``destination``.

    Idempotent: the same (destination, version, bulk or not) is the same run. Coalescing:
    while a sync run of this destination is queued and not started, a newer version joins
    it (the run delivers the latest version when it starts), so a destination that is
    several versions behind gets one delivery, not a queue of them.
    """
    version = version if version is not None else version_latest_number()
    kind = "bulk" if force_bulk else "sync"
    key = _key(destination, kind, version)
    with transaction.atomic():
        existing = DeliveryRun.objects.filter(idempotency_key=key).first()
        if existing is not None:
            return existing, False
        if not force_bulk:
            waiting = (
                DeliveryRun.objects.select_for_update()
                .filter(destination=destination, state=RunState.QUEUED, attempts=0,
                        force_bulk=False, reason__in=[RunReason.EVENT, RunReason.SCHEDULE,
                                                      RunReason.MANUAL])
                .order_by("-requested_version").first()
            )
            if waiting is not None:
                if (waiting.requested_version or 0) < version:
                    waiting.requested_version = version
                    waiting.save(update_fields=["requested_version"])
                return waiting, False
        run = DeliveryRun.objects.create(
            destination=destination, idempotency_key=key, reason=reason,
            requested_version=version, force_bulk=force_bulk, created_by=actor,
        )
        if actor is not None:
            audit.record(actor=actor, action="delivery.run_requested", target=run,
                         details={"destination": destination.pk, "version": version,
                                  "bulk": force_bulk})
        return run, True


@transaction.atomic
def delivery_run_replay(*, run: DeliveryRun, actor: Any) -> DeliveryRun:
    """Deliver a finished run again: the same bundle (while retained) to the same remote
    name, so the far side holds one file, and no second run exists for the version."""
    locked = DeliveryRun.objects.select_for_update().get(pk=run.pk)
    _transition(locked, RunState.QUEUED)
    locked.reason = RunReason.REPLAY
    locked.attempts = 0
    locked.next_attempt_at = None
    locked.error_code = ""
    locked.error = ""
    locked.finished_at = None
    locked.save()
    audit.record(actor=actor, action="delivery.run_replayed", target=locked,
                 details={"destination": locked.destination_id,
                          "version": locked.version_to or locked.requested_version})
    return locked


@transaction.atomic
def destination_rollback(*, destination: Destination, to_version: int, actor: Any) -> DeliveryRun:
    """Send the destination the retained bulk of ``to_version`` again, and count it as
    having received that version (the next sync is a delta from there)."""
    if not RosterVersion.objects.filter(number=to_version).exists() and to_version != 0:
        raise DeliveryError(UNKNOWN_VERSION, version=to_version)
    bundle = (
        Bundle.objects.filter(destination=destination, mode=RunMode.BULK,
                              version_to=to_version, purged_at__isnull=True)
        .order_by("-created_at").first()
    )
    if bundle is None and to_version != version_latest_number():
        raise DeliveryError(NO_BULK_FOR_VERSION, version=to_version)
    run = DeliveryRun.objects.create(
        destination=destination, reason=RunReason.ROLLBACK, requested_version=to_version,
        force_bulk=True, bundle=bundle, created_by=actor,
        idempotency_key=f"{destination.pk}:rollback:v{to_version}:{uuid.uuid4().hex[:12]}",
    )
    audit.record(actor=actor, action="delivery.destination_rolled_back", target=destination,
                 details={"to_version": to_version, "run": run.pk,
                          "bundle": bundle.pk if bundle else None})
    return run


def _transition(run: DeliveryRun, new: str) -> None:
    if new not in RUN_TRANSITIONS[run.state]:
        raise DeliveryError(BAD_TRANSITION, old=run.state, new=new)
    run.state = new


def _save_state(run: DeliveryRun, new: str, **fields: Any) -> None:
    _transition(run, new)
    for name, value in fields.items():
        setattr(run, name, value)
    run.save()


# --- runs: execution ------------------------------------------------------------------------


@contextmanager
def _destination_lock(destination_id: int) -> Iterator[bool]:
    """A session advisory lock: one run at a time per destination, across workers."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)",
                       [ADVISORY_LOCK_NAMESPACE, destination_id])
        (acquired,) = cursor.fetchone()
    try:
        yield bool(acquired)
    finally:
        if acquired:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)",
                               [ADVISORY_LOCK_NAMESPACE, destination_id])


class _HashingWriter:
    """Passes bytes on to the encrypting writer, hashing and counting the plaintext."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        self.size += len(data)
        self.inner.write(data)
        return len(data)

    def flush(self) -> None:
        pass


def release_policy(release: Any) -> dict[str, Any]:
    """What a delta depends on, besides the roster versions: the shape of the release (its
    fingerprint) and the exclusions active (ids only: who they withhold stays out of it)."""
    shape = {
        "projection": {e: list(c) for e, c in sorted(release.projection.items())},
        "orgs": sorted(release.org_sourced_ids),
        "overrides": [[o.id, o.kind] for o in release.overrides],
        "pseudonymised": release.pseudonymised,
    }
    fingerprint = hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()
    return {"fingerprint": fingerprint, "exclusions": sorted(release.exclusions)}


@dataclass(frozen=True)
class Plan:
    mode: str
    since: int | None
    why: str
    withheld: frozenset[str] | None = None


def delivery_plan(*, destination: Destination, release: Any, run: DeliveryRun) -> Plan:
    """Bulk or delta. A delta is only right against the policy the last delivery used: a
    changed projection, scope, override or pseudonymisation, or an exclusion that ended
    (the pupil must come back in full), makes it a bulk; new exclusions alone stay a delta
    in which those pupils are tobedeleted."""
    if run.force_bulk or run.reason in (RunReason.REPLAY, RunReason.ROLLBACK):
        return Plan(render.BULK, None, "asked for a bulk")
    if destination.last_delivered_version is None:
        return Plan(render.BULK, None, "first delivery")
    last = destination.last_policy or {}
    now = release_policy(release)
    if last.get("fingerprint") != now["fingerprint"]:
        return Plan(render.BULK, None, "release policy changed")
    before, after = set(last.get("exclusions", [])), set(now["exclusions"])
    if not before <= after:
        return Plan(render.BULK, None, "an exclusion ended")
    withheld = frozenset(release.exclusions[i] for i in after - before)
    return Plan(render.DELTA, destination.last_delivered_version, "delta", withheld)


def bundle_render(
    *, destination: Destination, release: Any, mode: str, since: int | None, until: int,
    withheld: frozenset[str] | None = None,
) -> tuple[Bundle, render.RenderResult]:
    """Render and store one bundle, encrypted from its first byte (no plaintext on disk)."""
    path = bundle_dir() / str(destination.pk) / f"{uuid.uuid4().hex}.zip.enc"
    with open_encrypted(path, purpose=BUNDLE_PURPOSE) as writer:
        hashing = _HashingWriter(writer)
        result = render.bundle_write(release, hashing, mode=mode, since=since, until=until,
                                     withheld=withheld)
    bundle = Bundle.objects.create(
        destination=destination, mode=mode, version_from=result.version_from,
        version_to=until, path=str(path), data_key_id=writer.data_key.pk,
        size_bytes=hashing.size, sha256=hashing.sha256.hexdigest(),
        counts={"rows": result.counts, "tobedeleted": result.deleted},
        policy=release_policy(release),
    )
    return bundle, result


def remote_name_for(destination: Destination, bundle: Bundle) -> str:
    since = f"_from_v{bundle.version_from}" if bundle.mode == RunMode.DELTA else ""
    return f"oneroster_{bundle.mode}{since}_v{bundle.version_to}.zip"


@dataclass
class ExecuteResult:
    run: DeliveryRun
    ran: bool  # False: another worker holds the destination, or nothing was due
    link_url: str = ""  # a pull link's URL, shown once (only its hash is stored)


def delivery_run_execute(*, run: DeliveryRun, now: dt.datetime | None = None,
                         base_url: str = "") -> ExecuteResult:
    """One attempt of ``run``. Safe to call again for the same run at any time."""
    with _destination_lock(run.destination_id) as acquired:
        if not acquired:
            return ExecuteResult(run, False)
        return _execute_locked(run.pk, now=now or timezone.now(), base_url=base_url)


def _execute_locked(run_id: int, *, now: dt.datetime, base_url: str) -> ExecuteResult:
    run = DeliveryRun.objects.select_related("destination__integration__vendor").get(pk=run_id)
    if run.is_final:
        return ExecuteResult(run, False)
    destination = run.destination
    started = time.perf_counter()
    if run.state != RunState.QUEUED:
        # a worker died mid-attempt: the redelivered task starts the attempt again
        log.warning("delivery run %s found in %s; restarting the attempt", run.pk, run.state)
    # Levers are state: read them now, whoever enqueued the run.
    skip = _skip_reason(run, destination)
    if skip is not None:
        code, message = skip
        run.state = RunState.SKIPPED
        run.error_code, run.error, run.finished_at = code, message, now
        run.save()
        return ExecuteResult(run, True)

    latest = version_latest_number()
    release = release_for(destination.integration, at=now)
    if not release.allows_service(CSV_SERVICE):
        run.state = RunState.SKIPPED
        run.error_code, run.error = SERVICE_NOT_APPROVED, MESSAGES[SERVICE_NOT_APPROVED]
        run.finished_at = now
        run.save()
        return ExecuteResult(run, True)
    bundle = run.bundle if run.bundle and not run.bundle.is_purged else None
    result: render.RenderResult | None = None
    link_url = ""
    run.attempts += 1
    run.started_at = run.started_at or now
    _save_state(run, RunState.RENDERING, error_code="", error="")
    try:
        why = "retained bundle"
        if bundle is None:
            plan = delivery_plan(destination=destination, release=release, run=run)
            why = plan.why
            until = latest
            if run.reason == RunReason.ROLLBACK:
                until = run.requested_version or latest
            bundle, result = bundle_render(destination=destination, release=release,
                                           mode=plan.mode, since=plan.since, until=until,
                                           withheld=plan.withheld)
        run.bundle = bundle
        run.mode = bundle.mode
        run.version_from = bundle.version_from
        run.version_to = bundle.version_to
        run.counts = {**bundle.counts, "why": why}
        rendered = time.perf_counter()
        _save_state(run, RunState.DELIVERING)
        if destination.transport == Transport.SFTP:
            run.remote_name = remote_name_for(destination, bundle)
            with open_decrypted(bundle.path, purpose=BUNDLE_PURPOSE) as src:
                run.bytes_sent = sftp.sftp_upload(
                    destination_endpoint(destination), src, remote_name=run.remote_name
                )
        else:
            link, token = _link_create(destination=destination, bundle=bundle, run=run, now=now)
            link_url = download_url(token, base_url=base_url)
            run.remote_name = f"link #{link.pk}"
            run.bytes_sent = 0
        delivered = time.perf_counter()
    except Exception as exc:  # noqa: BLE001 (every failure is recorded on the run, then alerted)
        _record_failure(run, exc, now=now)
        _access(run, status_code=502, started=started)
        return ExecuteResult(run, True)

    with transaction.atomic():
        run.timings = {"render_s": round(rendered - started, 3),
                       "deliver_s": round(delivered - rendered, 3)}
        _save_state(run, RunState.DELIVERED, finished_at=timezone.now(), next_attempt_at=None)
        # the vendor's copy now reflects the policy the bundle was rendered under
        _advance(destination, run, policy=bundle.policy)
        _disclose(release, result.people if result is not None
                  else people_of_bundle(bundle, release))
        release.record_withheld()
        audit.record(actor=None, action="delivery.delivered", target=run, details={
            "destination": destination.pk, "integration": destination.integration.name,
            "mode": run.mode, "version_from": run.version_from, "version_to": run.version_to,
            "rows": bundle.counts.get("rows", {}), "bytes": bundle.size_bytes,
            "transport": destination.transport, "reason": run.reason,
        })
    _access(run, status_code=200, started=started)
    return ExecuteResult(run, True, link_url)


def _skip_reason(run: DeliveryRun, destination: Destination) -> tuple[str, str] | None:
    integration = Integration.objects.select_related("vendor").get(pk=destination.integration_id)
    if destination.state == DestinationState.DISABLED:
        return DESTINATION_DISABLED, MESSAGES[DESTINATION_DISABLED]
    if destination.state == DestinationState.PAUSED:
        return DESTINATION_PAUSED, MESSAGES[DESTINATION_PAUSED]
    if not integration.is_live:
        return INTEGRATION_NOT_LIVE, MESSAGES[INTEGRATION_NOT_LIVE].format(
            status=integration.status)
    if run.reason in (RunReason.REPLAY, RunReason.ROLLBACK) or run.force_bulk:
        return None
    delivered = destination.last_delivered_version
    if delivered is not None and run.requested_version is not None \
            and delivered >= run.requested_version and run.attempts == 0:
        by = (DeliveryRun.objects.filter(destination=destination, state=RunState.DELIVERED,
                                         version_to__gte=run.requested_version)
              .order_by("version_to").values_list("pk", flat=True).first())
        return SUPERSEDED, MESSAGES[SUPERSEDED].format(version=run.requested_version, run=by)
    return None


def _advance(destination: Destination, run: DeliveryRun, *, policy: dict[str, Any]) -> None:
    """Move the destination's high-water mark (never backwards except by a rollback) and
    remember the policy the vendor's copy now reflects."""
    locked = Destination.objects.select_for_update().get(pk=destination.pk)
    to = run.version_to
    if run.reason == RunReason.ROLLBACK or locked.last_delivered_version is None \
            or (to is not None and to > locked.last_delivered_version):
        locked.last_delivered_version = to
    locked.last_delivered_at = timezone.now()
    locked.last_policy = policy
    locked.save(update_fields=["last_delivered_version", "last_delivered_at", "last_policy",
                               "updated_at"])
    destination.last_delivered_version = locked.last_delivered_version
    destination.last_policy = policy


def people_of_bundle(bundle: Bundle, release: Any) -> dict[str, list[str]]:
    """The people a stored bundle's active rows are about, read back from the bundle itself
    (a retry, replay or rollback re-sends bytes rendered earlier): per entity, the school's
    ids (pseudonyms are mapped back)."""
    out: dict[str, list[str]] = {}
    with open_decrypted(bundle.path, purpose=BUNDLE_PURPOSE) as src, \
            zipfile.ZipFile(src) as archive:
        names = set(archive.namelist())
        for entity, reference in render.PERSON_REFERENCE.items():
            if f"{entity}.csv" not in names:
                continue
            header = next(c.header for c in render.schema.SCHEMAS[entity].columns
                          if c.name == reference)
            with archive.open(f"{entity}.csv") as handle:
                rows = csv.DictReader(io.TextIOWrapper(handle, encoding="utf-8", newline=""))
                ids = {render.unneutralise(row[header]) for row in rows
                       if row.get("status") != "tobedeleted" and row[header]}
            if release.pseudonymised:
                ids = set(release.pseudonymiser.reverse(ids).values())
            out[entity] = sorted(ids)
    return out


def _disclose(release: Any, people_by_entity: dict[str, list[str]]) -> None:
    """Add what the bundle disclosed to the ledger: per entity, its people and the
    classes of the columns it carried."""
    if release.vendor_id is None:
        return
    for entity, people in people_by_entity.items():
        classes = {
            release.column_classes.get(entity, {}).get(column)
            for column in release.columns(entity)
        } - {None}
        if classes and people:
            disclosures_record(
                vendor_id=release.vendor_id, integration_id=release.integration.pk,
                channel=Channel.ONEROSTER_CSV, field_classes=classes, user_sourced_ids=people,
            )


def _record_failure(run: DeliveryRun, exc: Exception, *, now: dt.datetime) -> None:
    code = getattr(exc, "code", "") or RENDER_FAILED
    message = str(exc) if isinstance(exc, sftp.SftpError | DeliveryError) else \
        MESSAGES[RENDER_FAILED].format(detail=f"{type(exc).__name__}: {exc}")
    if not isinstance(exc, sftp.SftpError | DeliveryError):
        log.exception("delivery run %s failed", run.pk)
    final = getattr(exc, "final", False) or run.attempts >= max_attempts()
    run.error_code, run.error = code[:50], message
    if final:
        run.state = RunState.FAILED
        run.finished_at = timezone.now()
        run.next_attempt_at = None
        run.save()
        destination = run.destination
        raise_alert(
            rule="delivery.failed",
            subject=f"Delivery to {destination.integration.name} failed ({code})",
            severity=Severity.CRITICAL if code == sftp.HOST_KEY_MISMATCH else Severity.WARNING,
            dedup_key=f"delivery.failed:{destination.pk}",
            details={"destination": destination.pk, "run": run.pk, "code": code,
                     "attempts": run.attempts, "message": message},
            evidence=[{"label": f"run #{run.pk}",
                       "url": f"/admin/delivery/deliveryrun/{run.pk}/change/"}],
        )
        audit.record(actor=None, action="delivery.failed", target=run,
                     details={"code": code, "attempts": run.attempts})
    else:
        run.state = RunState.QUEUED
        run.next_attempt_at = now + dt.timedelta(seconds=backoff_seconds(run.attempts))
        run.save()


def _access(run: DeliveryRun, *, status_code: int, started: float) -> None:
    access_record(
        integration_id=run.destination.integration_id, channel=Channel.ONEROSTER_CSV,
        endpoint=f"delivery:{run.destination.transport}", status_code=status_code,
        records=sum((run.counts or {}).get("rows", {}).values()) if status_code < 400 else 0,
        duration_ms=int((time.perf_counter() - started) * 1000),
    )


def destination_drain(*, destination: Destination, now: dt.datetime | None = None,
                      base_url: str = "") -> list[ExecuteResult]:
    """Run the destination's due queued runs in version order (each at most once here)."""
    now = now or timezone.now()
    # Runs left rendering or delivering belong to a worker that died (a live one would hold
    # the destination lock, and execution takes it before touching them).
    due = list(
        DeliveryRun.objects.filter(destination=destination, state__in=[
            RunState.QUEUED, RunState.RENDERING, RunState.DELIVERING])
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .order_by("requested_version", "created_at").values_list("pk", flat=True)
    )
    results = []
    for run_id in due:
        result = delivery_run_execute(run=DeliveryRun.objects.get(pk=run_id), now=now,
                                      base_url=base_url)
        results.append(result)
        if not result.ran:
            break  # another worker has the destination; it will carry on
    return results


def next_retry_at(destination: Destination) -> dt.datetime | None:
    return (
        DeliveryRun.objects.filter(destination=destination, state=RunState.QUEUED,
                                   next_attempt_at__isnull=False)
        .order_by("next_attempt_at").values_list("next_attempt_at", flat=True).first()
    )


# --- event-driven and scheduled modes --------------------------------------------------------


def outbox_relay(*, limit: int = 500) -> list[int]:
    """Consume applied-version outbox rows in version order and enqueue one (coalesced)
    run per subscribed destination. Rows are marked consumed in the same transaction, and
    ``SKIP LOCKED`` lets two relays run without reading the same row. Returns the ids of
    the destinations to drain."""
    with transaction.atomic():
        rows = list(
            RosterOutbox.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(processed_at__isnull=True).select_related("version")
            .order_by("version__number")[:limit]
        )
        if not rows:
            return []
        latest = max(row.version.number for row in rows)
        # paused ones too: their run is skipped, so the history shows what they missed
        destinations = list(Destination.objects.filter(event_driven=True).exclude(
            state=DestinationState.DISABLED
        ))
        for destination in destinations:
            delivery_run_enqueue(destination=destination, reason=RunReason.EVENT, version=latest)
        RosterOutbox.objects.filter(pk__in=[r.pk for r in rows]).update(
            processed_at=timezone.now()
        )
        return [d.pk for d in destinations]


def destinations_schedule_due(*, now: dt.datetime | None = None) -> list[int]:
    """Enqueue a run for each destination whose interval has elapsed; plus destinations
    with a retry that is due. Returns the destination ids to drain."""
    now = now or timezone.now()
    out: set[int] = set()
    for destination in Destination.objects.filter(
        interval_minutes__isnull=False, state=DestinationState.ACTIVE
    ):
        last = destination.last_scheduled_at
        if last is None or now - last >= dt.timedelta(minutes=destination.interval_minutes or 0):
            delivery_run_enqueue(destination=destination, reason=RunReason.SCHEDULE)
            Destination.objects.filter(pk=destination.pk).update(last_scheduled_at=now)
            out.add(destination.pk)
    out.update(
        DeliveryRun.objects.filter(state=RunState.QUEUED, next_attempt_at__lte=now)
        .values_list("destination_id", flat=True)
    )
    # Event-driven destinations left behind (a suspension lifted, an event missed).
    for destination in Destination.objects.filter(
        event_driven=True, state=DestinationState.ACTIVE
    ).select_related("integration__vendor"):
        if destination.integration.is_live and catch_up_enqueue(destination=destination):
            out.add(destination.pk)
    # Runs mid-attempt: if their worker died, the drain (which takes the destination lock
    # a live worker would hold) carries them on without waiting for the broker's redelivery.
    out.update(
        DeliveryRun.objects.filter(state__in=[RunState.RENDERING, RunState.DELIVERING])
        .values_list("destination_id", flat=True)
    )
    return sorted(out)


# --- links and bundles ---------------------------------------------------------------------


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _link_create(*, destination: Destination, bundle: Bundle, run: DeliveryRun | None,
                 now: dt.datetime) -> tuple[DownloadLink, str]:
    token = pysecrets.token_urlsafe(32)
    link = DownloadLink.objects.create(
        destination=destination, bundle=bundle, run=run, token_sha256=_token_hash(token),
        expires_at=now + dt.timedelta(hours=destination.link_ttl_hours),
        single_use=destination.link_single_use,
    )
    return link, token


NO_RETAINED_BUNDLE = "no_retained_bundle"
MESSAGES[NO_RETAINED_BUNDLE] = ("No delivered bundle of this destination is still retained; "
                                "deliver again to get a link.")


@transaction.atomic
def download_link_issue(*, destination: Destination, actor: Any,
                        base_url: str = "") -> tuple[DownloadLink, str]:
    """A fresh link to the destination's latest delivered bundle, for staff to hand to the
    vendor; the URL is returned once (only its hash is stored). Audited."""
    if destination.state != DestinationState.ACTIVE:
        raise DeliveryError(DESTINATION_PAUSED if destination.state == DestinationState.PAUSED
                            else DESTINATION_DISABLED)
    run = (DeliveryRun.objects.filter(destination=destination, state=RunState.DELIVERED,
                                      bundle__purged_at__isnull=True, bundle__isnull=False)
           .select_related("bundle").order_by("-version_to", "-finished_at").first())
    if run is None:
        raise DeliveryError(NO_RETAINED_BUNDLE)
    link, token = _link_create(destination=destination, bundle=run.bundle, run=run,
                               now=timezone.now())
    audit.record(actor=actor, action="delivery.link_issued", target=destination,
                 details={"link": link.pk, "bundle": run.bundle_id,
                          "expires_at": link.expires_at.isoformat()})
    return link, download_url(token, base_url=base_url)


def download_url(token: str, *, base_url: str = "") -> str:
    from django.urls import reverse

    return f"{base_url.rstrip('/')}{reverse('delivery:download', args=[token])}"


LINK_UNKNOWN = "unknown"
LINK_GONE = "gone"


@dataclass
class LinkClaim:
    outcome: str  # "ok" | LINK_UNKNOWN | LINK_GONE
    link: DownloadLink | None = None


def download_link_claim(*, token: str, now: dt.datetime | None = None) -> LinkClaim:
    """Check a presented token and count the download; a single-use link is claimed by
    one atomic UPDATE, so two racing requests cannot both get the file."""
    now = now or timezone.now()
    link = (DownloadLink.objects.select_related("bundle", "destination__integration__vendor")
            .filter(token_sha256=_token_hash(token)).first())
    if link is None:
        return LinkClaim(LINK_UNKNOWN)
    usable = (
        link.revoked_at is None and link.expires_at > now and not link.bundle.is_purged
        and link.destination.state == DestinationState.ACTIVE
        and link.destination.integration.is_live
    )
    if not usable:
        return LinkClaim(LINK_GONE, link)
    claim = DownloadLink.objects.filter(pk=link.pk, revoked_at__isnull=True, expires_at__gt=now)
    if link.single_use:
        claim = claim.filter(used_at__isnull=True)
    updated = claim.update(used_at=now, downloads=F("downloads") + 1)
    if not updated:
        return LinkClaim(LINK_GONE, link)
    return LinkClaim("ok", link)


def bundle_open(bundle: Bundle) -> io.BufferedReader:
    return open_decrypted(bundle.path, purpose=BUNDLE_PURPOSE)


def _bundles_purge(bundles: Any, *, actor: Any = None, reason: str = "") -> int:
    purged = 0
    keys = []
    for bundle in bundles.filter(purged_at__isnull=True):
        # The destroyed data key is the purge (crypto-shredding, transactional); the file
        # goes once that commits, so a rolled-back purge never leaves a record without it.
        if bundle.path:
            transaction.on_commit(lambda path=bundle.path: Path(path).unlink(missing_ok=True))
        if bundle.data_key_id:
            keys.append(bundle.data_key_id)
        purged += 1
    if keys:
        data_keys_destroy(data_key_ids=keys, actor=actor, reason=reason or "bundle retention")
    bundles.filter(purged_at__isnull=True).update(purged_at=timezone.now(), path="")
    return purged


@transaction.atomic
def bundles_purge(*, now: dt.datetime | None = None) -> int:
    """Delete bundles past their destination's retention window (files and data keys)."""
    now = now or timezone.now()
    total = 0
    for destination in Destination.objects.all():
        cutoff = now - dt.timedelta(days=destination.retention_days)
        total += _bundles_purge(Bundle.objects.filter(destination=destination,
                                                      created_at__lt=cutoff))
    if total:
        DownloadLink.objects.filter(bundle__purged_at__isnull=False,
                                    revoked_at__isnull=True).update(revoked_at=now)
    return total


def export_bundle_write(*, integration: Integration, out: Any, since: int | None = None,
                        actor: Any = None) -> render.RenderResult:
    """Write the bundle ``integration`` would receive as a plain zip, for staff inspection
    (audited; not a delivery, so nothing goes in the disclosure ledger)."""
    release = release_for(integration)
    if not release.live:
        raise DeliveryError(INTEGRATION_NOT_LIVE, status=integration.status)
    if not release.allows_service(CSV_SERVICE):
        raise DeliveryError(SERVICE_NOT_APPROVED)
    latest = version_latest_number()
    mode = render.DELTA if since is not None else render.BULK
    result = render.bundle_write(release, out, mode=mode, since=since, until=latest,
                                 collect_people=False)
    audit.record(actor=actor, action="delivery.bundle_exported", target=integration,
                 details={"mode": mode, "since": since, "until": latest,
                          "rows": result.counts})
    return result
