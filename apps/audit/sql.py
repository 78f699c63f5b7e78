"""The audit app's set-based SQL, named and kept in one place (tested on PostgreSQL)."""

# One round trip per request: the recent-log row and the hourly aggregate together.
ACCESS_RECORD_AND_AGGREGATE = """
WITH recent AS (
    INSERT INTO audit_accessrecord
        (occurred_at, integration_id, channel, endpoint, status_code, records, duration_ms,
         client_id)
    VALUES (%(at)s, %(integration_id)s, %(channel)s, %(endpoint)s, %(status_code)s,
            %(records)s, %(duration_ms)s, %(client_id)s)
)
INSERT INTO audit_accesshourly AS h
    (integration_id, channel, endpoint, hour, requests, errors, records, duration_ms_total,
     duration_ms_max)
VALUES (%(integration_id)s, %(channel)s, %(endpoint)s, %(hour)s, 1, %(error)s, %(records)s,
        %(duration_ms)s, %(duration_ms)s)
ON CONFLICT (integration_id, channel, endpoint, hour) DO UPDATE SET
    requests = h.requests + 1,
    errors = h.errors + EXCLUDED.errors,
    records = h.records + EXCLUDED.records,
    duration_ms_total = h.duration_ms_total + EXCLUDED.duration_ms_total,
    duration_ms_max = GREATEST(h.duration_ms_max, EXCLUDED.duration_ms_max)
"""

# Bounded batches, so pruning a big backlog never holds long locks or bloats one transaction.
ACCESS_LOG_PRUNE_BATCH = """
DELETE FROM audit_accessrecord
WHERE id IN (
    SELECT id FROM audit_accessrecord WHERE occurred_at < %(cutoff)s LIMIT %(batch)s
)
"""

# Disclosures, step 1: a run that ended yesterday now ends today. Each pupil's run is
# probed through the unique key (a LATERAL subquery cannot be flattened into an anti-join
# that stale statistics would plan as a nested loop over the whole ledger) and locked in
# the order of the sorted ids, so two writers with overlapping pupils cannot deadlock.
DISCLOSURE_EXTEND = """
WITH due AS (
    SELECT hit.id
    FROM unnest(%(ids)s::text[]) WITH ORDINALITY AS u(user_sourced_id, n)
    CROSS JOIN LATERAL (
        SELECT d.id FROM audit_disclosure d
        WHERE d.integration_id = %(integration_id)s
          AND d.channel = %(channel)s
          AND d.field_classes = %(field_classes)s
          AND d.user_sourced_id = u.user_sourced_id
          AND d.last_day = %(day)s::date - 1
        FOR UPDATE
    ) AS hit
)
UPDATE audit_disclosure d SET last_day = %(day)s
FROM due WHERE d.id = due.id
"""

# Disclosures, step 2: pupils with no run covering the day start one (probed per pupil
# through the unique key, as in step 1). The unique key (…, user_sourced_id, first_day)
# makes a concurrent duplicate a no-op.
DISCLOSURE_START = """
INSERT INTO audit_disclosure
    (user_sourced_id, vendor_id, integration_id, channel, field_classes, first_day, last_day)
SELECT u.user_sourced_id, %(vendor_id)s, %(integration_id)s, %(channel)s, %(field_classes)s,
       %(day)s, %(day)s
FROM unnest(%(ids)s::text[]) WITH ORDINALITY AS u(user_sourced_id, n)
LEFT JOIN LATERAL (
    SELECT 1 AS covered FROM audit_disclosure d
    WHERE d.integration_id = %(integration_id)s
      AND d.channel = %(channel)s
      AND d.field_classes = %(field_classes)s
      AND d.user_sourced_id = u.user_sourced_id
      AND d.first_day <= %(day)s
      AND d.last_day >= %(day)s
    LIMIT 1
) AS run ON true
WHERE run.covered IS NULL
ORDER BY u.n
ON CONFLICT DO NOTHING
"""

# Exact distinct pupils over a period. Filters are appended by the selector ({filters}).
DISCLOSURE_DISTINCT = """
SELECT count(DISTINCT d.user_sourced_id)
FROM audit_disclosure d
WHERE d.first_day <= %(end)s AND d.last_day >= %(start)s
{filters}
"""

# Exact distinct pupils per period: every period start in [start, end], joined to the runs
# overlapping that period. Filters are appended by the selector ({filters}).
DISCLOSURE_DISTINCT_PER_PERIOD = """
WITH periods AS (
    SELECT p::date AS period_start,
           LEAST((p + %(step)s::interval - interval '1 day')::date, %(end)s::date) AS period_end
    FROM generate_series(
        date_trunc(%(unit)s, %(start)s::date::timestamp),
        %(end)s::date::timestamp,
        %(step)s::interval
    ) AS p
)
SELECT periods.period_start, count(DISTINCT d.user_sourced_id)
FROM periods
LEFT JOIN audit_disclosure d
    ON d.first_day <= periods.period_end
   AND d.last_day >= GREATEST(periods.period_start, %(start)s::date)
   {filters}
GROUP BY periods.period_start
ORDER BY periods.period_start
"""
