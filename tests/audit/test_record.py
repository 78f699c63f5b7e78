"""audit.record(): events commit with the decision they describe and chain without blocking."""

from __future__ import annotations

import datetime as dt
import threading
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.db import DatabaseError, connection, connections, transaction

from apps.audit import audit
from apps.audit.models import GENESIS_HASH, AuditChainHead, AuditEvent, PendingAuditEvent
from apps.audit.testing import TRUNCATE_FOR_TESTS_SETTING
from apps.audit.verify import audit_chain_verify


def _user(username: str = "dpo"):
    return get_user_model().objects.create_user(username=username, password="x" * 16)


@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_the_event_is_chained_at_once():
    actor = _user()

    audit.record(actor=actor, action="vendors.vendor_registered", details={"name": "Acme"})

    event = AuditEvent.objects.get()
    assert (event.id, event.prev_hash) == (1, GENESIS_HASH)
    assert (event.actor_id, event.actor_username) == (actor.pk, "dpo")
    assert event.details == {"name": "Acme"}
    assert not PendingAuditEvent.objects.exists()
    head = AuditChainHead.objects.get()
    assert (head.last_id, head.last_hash, head.count) == (1, event.hash, 1)


@pytest.mark.django_db
def test_inside_a_transaction_the_event_waits_for_the_commit(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        audit.record(actor=None, action="keys.signing_key_rotated")
        audit.record(actor=None, action="keys.signing_key_retired")
        assert PendingAuditEvent.objects.count() == 2
        assert not AuditEvent.objects.exists()

    assert list(AuditEvent.objects.order_by("id").values_list("id", "action")) == [
        (1, "keys.signing_key_rotated"),
        (2, "keys.signing_key_retired"),
    ]
    assert not PendingAuditEvent.objects.exists()
    assert audit_chain_verify().intact


@pytest.mark.django_db
def test_a_rolled_back_decision_leaves_no_audit_event(django_capture_on_commit_callbacks):
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        audit.record(actor=None, action="governance.scope_request_approved")
        raise RuntimeError("the approval failed")

    assert callbacks == []  # nothing to flush either
    assert not AuditEvent.objects.exists()
    assert not PendingAuditEvent.objects.exists()


@pytest.mark.django_db
def test_an_event_in_a_rolled_back_savepoint_is_dropped_and_the_rest_kept(
    django_capture_on_commit_callbacks,
):
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        audit.record(actor=None, action="roster.import_started")
        try:
            with transaction.atomic():
                audit.record(actor=None, action="roster.import_applied")
                raise RuntimeError("apply failed")
        except RuntimeError:
            pass

    assert list(AuditEvent.objects.values_list("action", flat=True)) == ["roster.import_started"]


@pytest.mark.django_db
def test_target_is_kept_as_label_pk_and_a_neutral_label(django_capture_on_commit_callbacks):
    pupil_account = _user("jane.doe.2009")

    with django_capture_on_commit_callbacks(execute=True):
        audit.record(actor=None, action="accounts.user_locked", target=pupil_account)

    event = AuditEvent.objects.get()
    assert (event.target_type, event.target_id) == ("auth.user", str(pupil_account.pk))
    assert "jane" not in event.target_repr
    assert event.actor_display == "system"


@pytest.mark.django_db
def test_details_are_stored_exactly_as_they_were_hashed(django_capture_on_commit_callbacks):
    key_id = uuid.uuid4()
    when = dt.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=dt.UTC)

    with django_capture_on_commit_callbacks(execute=True):
        audit.record(
            actor=None,
            action="keys.signing_key_rotated",
            details={"kid": key_id, "at": when, "ratio": 0.1, "names": ["é", "ß"]},
            restricted_details={"pupil": "S123", "reason": "court order"},
        )

    event = AuditEvent.objects.get()
    assert event.details["kid"] == str(key_id)
    assert event.details["at"].startswith("2026-01-02T03:04:05.678")
    assert event.restricted_details == {"pupil": "S123", "reason": "court order"}
    assert audit_chain_verify().intact


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"action": "Not A Slug"}, ValueError, audit.ERROR_BAD_ACTION.format("Not A Slug")),
        ({"action": "nodot"}, ValueError, audit.ERROR_BAD_ACTION.format("nodot")),
        ({"action": "a.b", "details": ["x"]}, TypeError, audit.ERROR_BAD_DETAILS.format("details")),
        ({"action": "a.b", "details": {"x": object()}}, TypeError, None),
        ({"action": "a.b", "actor": "admin"}, TypeError, audit.ERROR_BAD_ACTOR.format("admin")),
    ],
)
def test_malformed_records_are_refused(kwargs, error, message):
    kwargs = {"actor": None, **kwargs}
    with pytest.raises(error) as caught:
        audit.record(**kwargs)
    if message:
        assert str(caught.value) == message
    assert not PendingAuditEvent.objects.exists()


@pytest.mark.django_db
def test_unsaved_target_is_refused():
    with pytest.raises(TypeError):
        audit.record(actor=None, action="a.b", target=get_user_model()(username="ghost"))


# --- the trigger ------------------------------------------------------------------------------


@pytest.fixture
def chained_event(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        audit.record(actor=None, action="alerts.alert_resolved", details={"n": 1})
    return AuditEvent.objects.get()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_auditevent SET action = 'alerts.alert_ignored'",
        "DELETE FROM audit_auditevent",
        "TRUNCATE audit_auditevent",
        "DELETE FROM audit_auditchainhead",
        "UPDATE audit_auditchainhead SET last_id = 0, count = 0",
    ],
)
def test_the_database_refuses_to_rewrite_the_log(chained_event, statement):
    # the test database lets Django's flush truncate (apps/audit/testing.py); production does not
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config(%s, 'off', true)", [TRUNCATE_FOR_TESTS_SETTING])

    refused = pytest.raises(DatabaseError, match="append-only|only moves forward")
    with refused, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement)

    assert AuditEvent.objects.get().action == "alerts.alert_resolved"


@pytest.mark.django_db
def test_the_orm_cannot_rewrite_the_log_either(chained_event):
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.filter(pk=chained_event.pk).update(details={"n": 2})
    with pytest.raises(DatabaseError), transaction.atomic():
        chained_event.delete()


# --- concurrency ------------------------------------------------------------------------------


def _in_own_connection(work):
    """Run work in a thread, which Django gives its own database connection."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:  # surfaced to the test below
            errors.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, errors


@pytest.mark.django_db(transaction=True)
def test_concurrent_appends_from_many_connections_make_one_valid_chain():
    threads_count, per_thread = 6, 25

    def append(worker: int) -> None:
        for n in range(per_thread):
            if n % 2:
                with transaction.atomic():
                    audit.record(actor=None, action="test.concurrent", details={"w": worker})
            else:
                audit.record(actor=None, action="test.concurrent", details={"w": worker})

    started = [_in_own_connection(lambda w=w: append(w)) for w in range(threads_count)]
    for thread, _ in started:
        thread.join(timeout=60)
    assert [errors for _, errors in started] == [[]] * threads_count

    report = audit_chain_verify()
    assert report.intact, report
    assert report.events == threads_count * per_thread
    assert not PendingAuditEvent.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_an_open_transaction_that_recorded_does_not_hold_the_chain_lock():
    recorded, release = threading.Event(), threading.Event()

    def long_import() -> None:
        with transaction.atomic():
            audit.record(actor=None, action="roster.import_started")
            recorded.set()
            release.wait(timeout=30)

    thread, errors = _in_own_connection(long_import)
    try:
        assert recorded.wait(timeout=10)
        # given a long import holding its transaction open, when an approval is recorded and
        # flushed elsewhere, then it is chained without waiting (lock_timeout makes a wait fail)
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '2s'")
        audit.record(actor=None, action="governance.scope_request_approved")
        assert audit.flush_pending() == 0
        assert list(AuditEvent.objects.values_list("action", flat=True)) == [
            "governance.scope_request_approved"
        ]
    finally:
        release.set()
        thread.join(timeout=30)
    assert errors == []

    # the import's event is chained after its own commit, next in line
    assert list(AuditEvent.objects.order_by("id").values_list("action", flat=True)) == [
        "governance.scope_request_approved",
        "roster.import_started",
    ]
    assert audit_chain_verify().intact


@pytest.mark.django_db
def test_leftover_pending_events_are_chained_by_the_beat_task():
    from apps.audit.tasks import flush_pending_task

    # given an event whose post-commit flush never ran (the process died after commit)
    PendingAuditEvent.objects.create(
        occurred_at=dt.datetime.now(dt.UTC), action="keys.signing_key_rotated"
    )

    assert flush_pending_task.delay().get() == 1

    assert AuditEvent.objects.get().action == "keys.signing_key_rotated"
    assert audit_chain_verify().intact
