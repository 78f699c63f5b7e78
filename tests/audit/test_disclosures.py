"""The disclosure ledger: which pupils' data went where, by day, in bulk, counted exactly."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext

from apps.audit.models import Channel, Disclosure, FieldClass
from apps.audit.selectors import (
    DisclosureRun,
    disclosure_distinct_users,
    disclosure_distinct_users_per_period,
    disclosure_history_for_user,
)
from apps.audit.services import DisclosureBuffer, disclosures_record

VENDOR, INTEGRATION = 3, 30
DIRECTORY = [FieldClass.IDENTIFIER, FieldClass.DIRECTORY]


def day(n: int) -> dt.date:
    return dt.date(2026, 3, 1) + dt.timedelta(days=n - 1)


def disclose(ids, n, *, classes=DIRECTORY, integration_id=INTEGRATION, vendor_id=VENDOR,
             channel=Channel.ONEROSTER_REST):  # fmt: skip
    disclosures_record(
        vendor_id=vendor_id,
        integration_id=integration_id,
        channel=channel,
        field_classes=classes,
        user_sourced_ids=ids,
        day=day(n),
    )


@pytest.mark.django_db
def test_consecutive_days_extend_one_row_per_pupil():
    pupils = [f"u{i}" for i in range(1000)]

    with CaptureQueriesContext(connection) as queries:
        disclose(pupils, 1)
    assert len([q for q in queries if "audit_disclosure" in q["sql"]]) == 2  # not one per pupil
    disclose(pupils, 2)
    disclose(pupils[:10], 3)
    disclose(pupils[:10], 3)  # the same page again: nothing changes

    assert Disclosure.objects.count() == 1000
    assert Disclosure.objects.filter(first_day=day(1), last_day=day(3)).count() == 10
    assert Disclosure.objects.filter(first_day=day(1), last_day=day(2)).count() == 990


@pytest.mark.django_db
def test_distinct_counts_are_exact_over_any_period():
    # given a pupil disclosed on days 1, 2, 3 and 5, and another on day 2 only
    for n in (1, 2, 3, 5):
        disclose(["jane"], n)
    disclose(["omar"], 2)

    count = disclosure_distinct_users
    assert count(start=day(1), end=day(5)) == 2
    assert count(start=day(4), end=day(4)) == 0
    assert count(start=day(3), end=day(4)) == 1
    assert count(start=day(5), end=day(9)) == 1
    assert count(start=day(6), end=day(9)) == 0
    assert count(start=day(1), end=day(5), vendor_id=VENDOR + 1) == 0
    assert count(start=day(1), end=day(5), integration_id=INTEGRATION) == 2
    assert disclosure_distinct_users_per_period(start=day(1), end=day(6)) == [
        (day(1), 1),
        (day(2), 2),
        (day(3), 1),
        (day(4), 0),
        (day(5), 1),
        (day(6), 0),
    ]


@pytest.mark.django_db
def test_a_pupil_disclosed_through_two_keys_counts_once():
    disclose(["jane"], 1)
    disclose(["jane"], 1, classes=[FieldClass.ASSESSMENT])
    disclose(["jane"], 1, channel=Channel.LTI_NRPS)

    assert Disclosure.objects.count() == 3
    assert disclosure_distinct_users(start=day(1), end=day(1)) == 1


@pytest.mark.django_db
def test_counts_by_field_class_match_any_disclosure_that_included_it():
    disclose(["jane"], 1, classes=[FieldClass.IDENTIFIER, FieldClass.SPECIAL_CATEGORY])
    disclose(["omar"], 1, classes=[FieldClass.IDENTIFIER])

    def count(field_class):
        return disclosure_distinct_users(start=day(1), end=day(1), field_class=field_class)

    assert count(FieldClass.SPECIAL_CATEGORY) == 1
    assert count(FieldClass.IDENTIFIER) == 2
    assert count(FieldClass.CONTACT) == 0


@pytest.mark.django_db
def test_weekly_and_monthly_periods_count_each_pupil_once_per_period():
    # 2026-03-01 is a Sunday: day 1 falls in the week of Monday 23 February
    for n in (1, 2, 3, 9, 40):
        disclose(["jane"], n)
    disclose(["omar"], 3)

    assert disclosure_distinct_users_per_period(start=day(1), end=day(14), period="week") == [
        (day(1), 1),
        (day(2), 2),
        (day(9), 1),
    ]
    assert disclosure_distinct_users_per_period(start=day(1), end=day(45), period="month") == [
        (day(1), 2),
        (dt.date(2026, 4, 1), 1),
    ]


@pytest.mark.django_db
def test_a_pupils_history_lists_each_destination_with_its_days():
    for n in (1, 2, 3, 5):
        disclose(["jane"], n)
    disclose(["jane"], 4, classes=[FieldClass.ASSESSMENT], channel=Channel.LTI_AGS)

    assert disclosure_history_for_user("jane") == [
        DisclosureRun(VENDOR, INTEGRATION, "oneroster_rest", ["identifier", "directory"],
                      day(1), day(3)),
        DisclosureRun(VENDOR, INTEGRATION, "lti_ags", ["assessment"], day(4), day(4)),
        DisclosureRun(VENDOR, INTEGRATION, "oneroster_rest", ["identifier", "directory"],
                      day(5), day(5)),
    ]  # fmt: skip
    assert disclosure_history_for_user("nobody") == []


@pytest.mark.django_db
def test_a_late_backfill_of_a_gap_day_merges_in_the_history():
    for n in (1, 2, 4):
        disclose(["jane"], n)
    disclose(["jane"], 3)  # a delivery run recorded late

    (run,) = disclosure_history_for_user("jane")
    assert (run.first_day, run.last_day) == (day(1), day(4))
    assert disclosure_distinct_users(start=day(3), end=day(3)) == 1


@pytest.mark.django_db
def test_unknown_field_classes_and_empty_ids_are_refused():
    with pytest.raises(ValueError, match="unknown field class 'shoe_size'"):
        disclose(["jane"], 1, classes=["shoe_size"])
    with pytest.raises(ValueError, match="at least one field class"):
        disclose(["jane"], 1, classes=[])
    with pytest.raises(ValueError, match="non-empty strings"):
        disclose([""], 1)


@pytest.mark.django_db
def test_the_buffer_writes_each_field_class_set_once_at_the_end():
    buffer = DisclosureBuffer(
        vendor_id=VENDOR, integration_id=INTEGRATION, channel=Channel.ONEROSTER_REST, day=day(1)
    )
    with buffer:
        for page in range(5):
            page_ids = [f"u{page}-{i}" for i in range(100)]
            buffer.add(field_classes=DIRECTORY, user_sourced_ids=page_ids)
        buffer.add(field_classes=[FieldClass.CONTACT], user_sourced_ids=["u0-0"])
        assert not Disclosure.objects.exists()  # nothing on the hot path
        assert len(buffer) == 501

    assert Disclosure.objects.count() == 501
    assert disclosure_distinct_users(start=day(1), end=day(1)) == 500


@pytest.mark.django_db
def test_a_failed_request_discloses_nothing():
    with (
        pytest.raises(RuntimeError),
        DisclosureBuffer(
            vendor_id=VENDOR, integration_id=INTEGRATION, channel=Channel.ONEROSTER_REST
        ) as buffer,
    ):
        buffer.add(field_classes=DIRECTORY, user_sourced_ids=["jane"])
        raise RuntimeError("rendering failed")

    assert not Disclosure.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_never_duplicate_a_pupils_day():
    pupils = [f"u{i}" for i in range(400)]
    disclose(pupils[::2], 1)  # half of them have a run ending yesterday
    barrier = threading.Barrier(6)
    errors: list[BaseException] = []

    def writer(k: int) -> None:
        try:
            barrier.wait(timeout=10)
            # overlapping, differently ordered sets of pupils
            ids = pupils[k * 40 :] + pupils[: k * 40]
            disclose(list(reversed(ids)) if k % 2 else ids, 2)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert Disclosure.objects.count() == 400
    assert Disclosure.objects.filter(first_day=day(1), last_day=day(2)).count() == 200
    assert Disclosure.objects.filter(first_day=day(2), last_day=day(2)).count() == 200
    assert disclosure_distinct_users(start=day(2), end=day(2)) == 400


@pytest.mark.django_db
@pytest.mark.parametrize("statement", ["DISCLOSURE_EXTEND", "DISCLOSURE_START"])
def test_the_ledger_is_probed_per_pupil_through_its_key_whatever_the_statistics(statement):
    """With stale statistics (autovacuum off, or not yet run) the planner once turned the
    "no run covers today" check into a nested loop over the whole ledger for every pupil:
    1.7 s per REST page at 20,000 users. Each pupil must be looked up by the unique key."""
    from apps.audit import sql

    with connection.cursor() as cursor:
        # a ledger of 20,000 runs that was never analysed (autovacuum off or behind); the
        # test transaction rolls the catalogue change back
        cursor.execute(
            "INSERT INTO audit_disclosure (user_sourced_id, vendor_id, integration_id, channel,"
            " field_classes, first_day, last_day) SELECT 'p' || g, %s, %s, %s, 3, %s, %s"
            " FROM generate_series(1, 20000) g",
            [VENDOR, INTEGRATION, Channel.ONEROSTER_REST, day(1), day(1)],
        )
        cursor.execute("UPDATE pg_class SET reltuples = -1, relpages = 0"
                       " WHERE relname = 'audit_disclosure'")
        cursor.execute(
            "EXPLAIN " + getattr(sql, statement),
            {"ids": [f"u{n}" for n in range(1000)], "vendor_id": VENDOR,
             "integration_id": INTEGRATION, "channel": Channel.ONEROSTER_REST,
             "field_classes": 3, "day": day(2)},
        )
        plan = "\n".join(row[0] for row in cursor.fetchall())

    probes = [line for line in plan.splitlines() if "audit_disclosure_key" in line]
    assert probes, plan
    assert "user_sourced_id = u.user_sourced_id" in plan.split("audit_disclosure_key", 1)[1], plan
