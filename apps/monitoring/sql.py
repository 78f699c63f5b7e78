"""The monitoring app's set-based SQL, named and kept in one place (tested on PostgreSQL).

Every statement reads base-layer and roster tables only; none touches a spoke's tables.
"""

from __future__ import annotations

from apps.roster.models import CANONICAL_MODELS

# A row is part of version N when N lies in [valid_from_version, valid_to_version).
_AS_OF = (
    "{a}.valid_from_version <= t.number"
    " AND ({a}.valid_to_version IS NULL OR {a}.valid_to_version > t.number)"
)


def _totals() -> str:
    parts = []
    for entity, model in CANONICAL_MODELS.items():
        # table names come from the models, never from input
        parts.append(
            f"'{entity}', (SELECT count(*) FROM {model._meta.db_table} r "  # noqa: S608
            f"WHERE {_AS_OF.format(a='r').replace('t.number', 'v.number')})"
        )
    return "jsonb_build_object(" + ", ".join(parts) + ")"


# One statement per version: the summary row (totals per entity as of the version) and its
# counts per org and role (users from roles, enrolments per school, classes per school).
# ON CONFLICT DO NOTHING makes a second run for the same version a no-op.
ROSTER_TELEMETRY_RECORD = f"""
WITH t AS (
    INSERT INTO monitoring_rosterversiontelemetry
        (version_id, number, source_name, applied_at, kind, added, updated, deleted, changes,
         totals, computed_at)
    SELECT v.id, v.number, s.name, v.created_at, v.kind, v.added, v.updated, v.deleted,
           v.by_entity, {_totals()}, now()
    FROM roster_rosterversion v JOIN roster_source s ON s.id = v.source_id
    WHERE v.id = %(version_id)s
    ON CONFLICT (version_id) DO NOTHING
    RETURNING id, number
)
INSERT INTO monitoring_rostercount (telemetry_id, kind, entity, org_sourced_id, role, count)
SELECT t.id, 'users_by_org_role', 'users', r.org_sourced_id, r.role,
       count(DISTINCT r.user_sourced_id)
FROM t JOIN roster_role r ON {_AS_OF.format(a='r')}
GROUP BY t.id, r.org_sourced_id, r.role
UNION ALL
SELECT t.id, 'enrolments_by_org_role', 'enrollments', e.school_sourced_id, e.role, count(*)
FROM t JOIN roster_enrollment e ON {_AS_OF.format(a='e')}
GROUP BY t.id, e.school_sourced_id, e.role
UNION ALL
SELECT t.id, 'entity_by_org', 'classes', c.school_sourced_id, '', count(*)
FROM t JOIN roster_class c ON {_AS_OF.format(a='c')}
GROUP BY t.id, c.school_sourced_id
"""  # noqa: S608

# Versions applied that have no telemetry yet, oldest first (the beat task's work list).
ROSTER_VERSIONS_WITHOUT_TELEMETRY = """
SELECT v.id FROM roster_rosterversion v
WHERE NOT EXISTS (SELECT 1 FROM monitoring_rosterversiontelemetry t WHERE t.version_id = v.id)
ORDER BY v.number
LIMIT %(limit)s
"""

# Distinct pupils disclosed per integration and day, two ways with the same result: for a few
# days, expand each run into its days and group (cheapest for the beat's today and
# yesterday); for a long range, merge each pupil's runs into islands once and sweep, so a
# backfill costs O(runs), not O(runs x days).
DISCLOSED_GROUPED = """
), pupil_days AS (
    -- one row per integration, day and pupil (a pupil may have several runs: channels,
    -- field classes); grouped rather than count(DISTINCT) so PostgreSQL may hash
    SELECT d.integration_id, g.day::date AS day, d.user_sourced_id
    FROM generate_series(%(start)s::date, %(end)s::date, interval '1 day') AS g(day)
    JOIN audit_disclosure d ON d.last_day >= g.day::date AND d.first_day <= g.day::date
    WHERE d.last_day >= %(start)s::date
    GROUP BY 1, 2, 3
), disclosed AS (
    SELECT integration_id, day, count(*) AS users FROM pupil_days GROUP BY 1, 2
"""
DISCLOSED_SWEEP = """
), runs AS (
    -- a pupil's runs may overlap (several channels or field classes) or touch; clamp them to
    -- the range, then merge each pupil's runs per integration into disjoint islands
    SELECT integration_id, user_sourced_id,
           greatest(first_day, %(start)s::date) AS f, least(last_day, %(end)s::date) AS l
    FROM audit_disclosure
    WHERE last_day >= %(start)s::date AND first_day <= %(end)s::date
), ordered AS (
    SELECT *, max(l) OVER (PARTITION BY integration_id, user_sourced_id COLLATE "C"
                           ORDER BY f, l ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS reach
    FROM runs
), islands AS (
    SELECT integration_id, user_sourced_id, f, l,
           count(*) FILTER (WHERE reach IS NULL OR f > reach + 1)
               OVER (PARTITION BY integration_id, user_sourced_id COLLATE "C" ORDER BY f, l)
               AS island
    FROM ordered
), merged AS (
    SELECT integration_id, min(f) AS f, max(l) AS l
    FROM islands GROUP BY integration_id, user_sourced_id, island
), deltas AS (
    -- a sweep: +1 where an island starts, -1 the day after it ends; the running sum per
    -- integration is the number of distinct pupils on each day, O(runs) not O(runs x days)
    SELECT integration_id, day, sum(delta) AS delta
    FROM (SELECT integration_id, f AS day, 1 AS delta FROM merged
          UNION ALL
          SELECT integration_id, l + 1, -1 FROM merged) AS e
    GROUP BY 1, 2
), sweep AS (
    SELECT i.integration_id, g.day::date AS day,
           sum(coalesce(x.delta, 0)) OVER (PARTITION BY i.integration_id ORDER BY g.day)
               AS users
    FROM (SELECT DISTINCT integration_id FROM deltas) AS i
    CROSS JOIN generate_series(%(start)s::date, %(end)s::date, interval '1 day') AS g(day)
    LEFT JOIN deltas x ON x.integration_id = i.integration_id AND x.day = g.day::date
), disclosed AS (
    SELECT integration_id, day, users FROM sweep WHERE users > 0
"""
SWEEP_FROM_DAYS = 4

# Access telemetry per integration and day, recomputed from the hourly aggregate and the
# disclosure ledger for a range of days (idempotent: the days' rows are replaced).
# Token requests are the endpoints ending in /token (OAuth for REST, LTI's token endpoint);
# score posts are AGS calls on a /scores endpoint; deliveries are CSV runs.
ACCESS_ACTIVITY_ROLLUP_TEMPLATE = """
WITH hourly AS (
    SELECT h.integration_id, (h.hour AT TIME ZONE %(tz)s)::date AS day,
           sum(h.requests) AS requests, sum(h.errors) AS errors, sum(h.records) AS records,
           coalesce(sum(h.requests - h.errors) FILTER (WHERE h.endpoint LIKE '%%/token'), 0)
               AS token_grants,
           coalesce(sum(h.errors) FILTER (WHERE h.endpoint LIKE '%%/token'), 0)
               AS token_failures,
           coalesce(sum(h.requests) FILTER (
               WHERE h.channel = 'oneroster_rest' AND h.endpoint NOT LIKE '%%/token'), 0)
               AS rest_requests,
           coalesce(sum(h.requests - h.errors) FILTER (
               WHERE h.channel IN ('lti_launch', 'lti_deep_linking')), 0) AS launches,
           coalesce(sum(h.requests) FILTER (WHERE h.channel = 'lti_nrps'), 0) AS nrps_calls,
           coalesce(sum(h.requests) FILTER (
               WHERE h.channel = 'lti_ags' AND h.endpoint LIKE '%%score%%'), 0) AS score_posts,
           coalesce(sum(h.requests) FILTER (WHERE h.channel = 'oneroster_csv'), 0) AS deliveries,
           coalesce(sum(h.errors) FILTER (WHERE h.channel = 'oneroster_csv'), 0)
               AS delivery_failures
    FROM audit_accesshourly h
    WHERE h.hour >= (%(start)s::date)::timestamp AT TIME ZONE %(tz)s
      AND h.hour < (%(end)s::date + 1)::timestamp AT TIME ZONE %(tz)s
    GROUP BY 1, 2
{disclosed})
INSERT INTO monitoring_integrationactivity
    (integration_id, day, requests, errors, records, users_disclosed, token_grants,
     token_failures, rest_requests, launches, nrps_calls, score_posts, deliveries,
     delivery_failures)
SELECT coalesce(h.integration_id, d.integration_id), coalesce(h.day, d.day),
       coalesce(h.requests, 0), coalesce(h.errors, 0), coalesce(h.records, 0),
       coalesce(d.users, 0), coalesce(h.token_grants, 0), coalesce(h.token_failures, 0),
       coalesce(h.rest_requests, 0), coalesce(h.launches, 0), coalesce(h.nrps_calls, 0),
       coalesce(h.score_posts, 0), coalesce(h.deliveries, 0), coalesce(h.delivery_failures, 0)
FROM hourly h
FULL JOIN disclosed d ON d.integration_id IS NOT DISTINCT FROM h.integration_id AND d.day = h.day
ON CONFLICT (integration_id, day) DO UPDATE SET
    requests = EXCLUDED.requests, errors = EXCLUDED.errors, records = EXCLUDED.records,
    users_disclosed = EXCLUDED.users_disclosed, token_grants = EXCLUDED.token_grants,
    token_failures = EXCLUDED.token_failures, rest_requests = EXCLUDED.rest_requests,
    launches = EXCLUDED.launches, nrps_calls = EXCLUDED.nrps_calls,
    score_posts = EXCLUDED.score_posts, deliveries = EXCLUDED.deliveries,
    delivery_failures = EXCLUDED.delivery_failures
"""

# Per integration: a measure in the recent window against the same window one and two weeks
# earlier (schools run on a weekly rhythm: a quiet Saturday is not a collapse), and how many
# days of history there are before the window.
ACCESS_WINDOW_VS_BASELINE = """
SELECT h.integration_id,
       coalesce(sum(h.{measure}) FILTER (WHERE h.hour >= %(window_start)s), 0)::bigint
           AS current,
       coalesce(sum(h.{measure}) FILTER (
           WHERE h.hour < %(window_start)s
             AND mod(extract(epoch FROM %(now)s - h.hour)::bigint, 604800) < %(window_seconds)s
       ), 0)::float / %(weeks)s AS baseline,
       count(DISTINCT date_trunc('day', h.hour)) FILTER (WHERE h.hour < %(window_start)s)
           AS baseline_days
FROM audit_accesshourly h
WHERE h.integration_id IS NOT NULL
  AND h.hour >= %(baseline_start)s AND h.hour < %(now)s
  AND {channel_filter}
GROUP BY h.integration_id
"""

# Per integration and hour of day: requests in the recent window, and the share of the
# baseline's requests that fell in that hour of day.
ACCESS_HOURS_VS_BASELINE = """
WITH base AS (
    SELECT integration_id, extract(hour FROM hour AT TIME ZONE %(tz)s)::int AS hod,
           sum(requests) AS requests
    FROM audit_accesshourly
    WHERE integration_id IS NOT NULL AND hour >= %(baseline_start)s AND hour < %(window_start)s
    GROUP BY 1, 2
), totals AS (
    SELECT integration_id, sum(requests)::bigint AS total,
           count(DISTINCT hod) AS active_hours
    FROM base GROUP BY 1
), recent AS (
    SELECT integration_id, extract(hour FROM hour AT TIME ZONE %(tz)s)::int AS hod,
           sum(requests)::bigint AS requests
    FROM audit_accesshourly
    WHERE integration_id IS NOT NULL AND hour >= %(window_start)s AND hour < %(now)s
    GROUP BY 1, 2
)
SELECT r.integration_id, r.hod, r.requests, coalesce(b.requests, 0)::float / t.total AS share,
       t.total
FROM recent r
JOIN totals t USING (integration_id)
LEFT JOIN base b ON b.integration_id = r.integration_id AND b.hod = r.hod
WHERE r.requests >= %(min_volume)s
  AND t.total >= %(min_volume)s
  AND coalesce(b.requests, 0)::float / t.total < %(threshold)s
ORDER BY r.integration_id, r.hod
"""

# Refused token requests per client in the window (recent log: it has the client id).
TOKEN_FAILURES_BY_CLIENT = """
SELECT client_id, max(integration_id) AS integration_id, count(*) AS failures,
       min(occurred_at) AS first_at, max(occurred_at) AS last_at
FROM audit_accessrecord
WHERE occurred_at >= %(since)s AND endpoint LIKE '%%/token' AND status_code >= 400
  AND client_id <> ''
GROUP BY client_id
HAVING count(*) >= %(threshold)s
ORDER BY failures DESC
"""  # noqa: S105

# CSV destinations: the last successful delivery per live integration against the newest
# roster version, and failures in the window.
DELIVERY_STATE = """
SELECT i.id, i.name,
       (SELECT max(a.occurred_at) FROM audit_accessrecord a
        WHERE a.integration_id = i.id AND a.channel = 'oneroster_csv' AND a.status_code < 400)
           AS last_ok,
       (SELECT max(h.hour) FROM audit_accesshourly h
        WHERE h.integration_id = i.id AND h.channel = 'oneroster_csv'
          AND h.requests > h.errors) AS last_ok_hour,
       (SELECT coalesce(sum(h.errors), 0) FROM audit_accesshourly h
        WHERE h.integration_id = i.id AND h.channel = 'oneroster_csv'
          AND h.hour >= %(since)s)::bigint AS failures
FROM vendors_integration i JOIN vendors_vendor v ON v.id = i.vendor_id
WHERE i.kind = 'oneroster_csv' AND i.status = 'active' AND v.status = 'active'
ORDER BY i.id
"""

# Service levels: for the newest versions and each live CSV destination, when the first
# successful delivery at or after the version landed (NULL: not yet). The access log's
# (integration_id, occurred_at) index makes each probe one index range.
PROPAGATION = """
WITH v AS (
    SELECT number, created_at FROM roster_rosterversion ORDER BY number DESC LIMIT %(versions)s
), d AS (
    SELECT i.id, i.name FROM vendors_integration i JOIN vendors_vendor vv ON vv.id = i.vendor_id
    WHERE i.kind = 'oneroster_csv' AND i.status = 'active' AND vv.status = 'active'
)
SELECT v.number, v.created_at, d.id, d.name,
       (SELECT min(a.occurred_at) FROM audit_accessrecord a
        WHERE a.integration_id = d.id AND a.channel = 'oneroster_csv' AND a.status_code < 400
          AND a.occurred_at >= v.created_at) AS delivered_at
FROM v CROSS JOIN d
ORDER BY v.number DESC, d.name
"""


def access_activity_rollup_sql(days: int) -> str:
    """The rollup statement for a range of ``days`` days (see DISCLOSED_*)."""
    disclosed = DISCLOSED_SWEEP if days >= SWEEP_FROM_DAYS else DISCLOSED_GROUPED
    return ACCESS_ACTIVITY_ROLLUP_TEMPLATE.replace("{disclosed}", disclosed.strip("\n") + "\n")
