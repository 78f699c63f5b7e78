"""verify_audit_chain: exit 0 when intact, 1 naming the first altered, removed or moved event.

Tampering goes through raw SQL with the append-only trigger disabled, as an attacker with
database access would.
"""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command, execute_from_command_line
from django.core.management.base import CommandError
from django.db import connection

from apps.audit import audit
from apps.audit.audit import event_hash
from apps.audit.models import AuditEvent
from apps.audit.verify import (
    REASON_GAP,
    REASON_HASH_MISMATCH,
    REASON_HEAD_MISMATCH,
    REASON_PREV_HASH_MISMATCH,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def chain(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        for n in range(1, 6):
            audit.record(actor=None, action="test.event", details={"n": n})
    assert AuditEvent.objects.count() == 5


def tamper(*statements: str, params: list | None = None) -> None:
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER audit_event_append_only")
        for statement in statements:
            cursor.execute(statement, params)
        cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER audit_event_append_only")


def verify_json() -> tuple[int, dict]:
    out = io.StringIO()
    try:
        call_command("verify_audit_chain", "--json", stdout=out)
    except CommandError as exc:
        return exc.returncode, json.loads(out.getvalue())
    return 0, json.loads(out.getvalue())


def test_an_intact_chain_exits_0(chain):
    out = io.StringIO()
    call_command("verify_audit_chain", stdout=out)
    assert "intact: 5 events" in out.getvalue()

    code, report = verify_json()
    assert code == 0
    assert report["intact"] is True
    assert report["events"] == 5
    assert report["last_hash"] == AuditEvent.objects.get(id=5).hash


def test_an_empty_log_is_intact():
    assert verify_json() == (0, verify_json()[1])
    assert verify_json()[1]["events"] == 0


def test_an_altered_event_is_named(chain):
    tamper("UPDATE audit_auditevent SET details = '{\"n\": 99}' WHERE id = 3")

    code, report = verify_json()

    assert code == 1
    assert (report["broken_event_id"], report["reason"]) == (3, REASON_HASH_MISMATCH)
    assert report["events"] == 2


def test_an_altered_actor_or_time_is_named(chain):
    tamper("UPDATE audit_auditevent SET occurred_at = occurred_at - interval '1 day' WHERE id = 2")
    assert verify_json()[1]["broken_event_id"] == 2


def test_an_altered_and_rehashed_event_breaks_the_next_link(chain):
    # given an attacker who alters event 3 and recomputes its hash
    event = AuditEvent.objects.get(id=3)
    forged = event_hash(
        id=3,
        occurred_at=event.occurred_at,
        actor_id=None,
        actor_username="",
        action=event.action,
        target_type="",
        target_id="",
        target_repr="",
        details={"n": 99},
        restricted_details={},
        prev_hash=event.prev_hash,
    )
    tamper(
        "UPDATE audit_auditevent SET details = '{\"n\": 99}', hash = %s WHERE id = 3",
        params=[forged],
    )

    code, report = verify_json()

    assert code == 1
    assert (report["broken_event_id"], report["reason"]) == (4, REASON_PREV_HASH_MISMATCH)


def test_a_removed_event_leaves_a_gap(chain):
    tamper("DELETE FROM audit_auditevent WHERE id = 2")

    code, report = verify_json()

    assert code == 1
    assert (report["broken_event_id"], report["reason"]) == (3, REASON_GAP)


def test_reordered_events_are_named(chain):
    tamper(
        "UPDATE audit_auditevent SET id = -2 WHERE id = 2",
        "UPDATE audit_auditevent SET id = 2 WHERE id = 3",
        "UPDATE audit_auditevent SET id = 3 WHERE id = -2",
    )

    code, report = verify_json()

    assert code == 1
    assert (report["broken_event_id"], report["reason"]) == (2, REASON_HASH_MISMATCH)


def test_a_removed_tail_disagrees_with_the_chain_head(chain):
    tamper("DELETE FROM audit_auditevent WHERE id >= 4")

    code, report = verify_json()

    assert code == 1
    assert (report["broken_event_id"], report["reason"]) == (4, REASON_HEAD_MISMATCH)


def test_the_command_line_exits_1_and_names_the_event(chain, capsys):
    tamper("UPDATE audit_auditevent SET action = 'test.other' WHERE id = 5")

    with pytest.raises(SystemExit) as exited:
        execute_from_command_line(["manage.py", "verify_audit_chain"])

    assert exited.value.code == 1
    assert "broken at event 5: hash mismatch" in capsys.readouterr().err
