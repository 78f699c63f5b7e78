"""Assignment and Grade Services: line items, scores and results, into the owned gradebook.

Grades are where platforms have misrouted data before: a tool-supplied id (a resource link
id, a line item URL) pointing into another course. Here nothing the tool sends chooses a
context: the context comes from the URL, is checked against the token's tool and deployment
(``apis._Call.context``), and every line item is looked up *through* it; a ``resourceLinkId``
in a body must name a link of that same context. A line item of another context is simply
not found.

Scores land in the canonical gradebook as results owned by the tool's integration, through
``apps.roster.gradebook.gradebook_write`` (one small version per write), so the SIS reads them
back through OneRoster and a SIS import never deletes them. The last accepted score per
person is kept with the tool's timestamp (``AgsScore``); one guarded upsert decides whether an
incoming score is newer, so an older score never overwrites a newer one, even when two race.

A score is accepted only for a member of the class as the release shows it (``nrps``): an
excluded pupil cannot receive one, and reads of results go through ``release.results()``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import hashlib
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from apps.governance.pseudonyms import IDENTITY
from apps.governance.release import Release
from apps.lti import claims as claims_
from apps.lti import nrps
from apps.lti.models import AgsLineItem, AgsScore, LtiContext, ResourceLink
from apps.roster.gradebook import (
    GUARD_REFUSED,
    GradebookWriteError,
    gradebook_write,
    integration_source,
)
from portal.db import prepared

LINEITEM_MEDIA = "application/vnd.ims.lis.v2.lineitem+json"
CONTAINER_MEDIA = "application/vnd.ims.lis.v2.lineitemcontainer+json"
RESULTS_MEDIA = "application/vnd.ims.lis.v2.resultcontainer+json"
SCORE_MEDIA = "application/vnd.ims.lis.v1.score+json"
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_TEXT = 255
MAX_COMMENT = 4000

ACTIVITY_PROGRESS = ("Initialized", "Started", "InProgress", "Submitted", "Completed")
GRADING_PROGRESS = ("FullyGraded", "Pending", "PendingManual", "Failed", "NotReady")

# --- errors (tests assert on these) -------------------------------------------------------------
ERROR_BODY = "the body must be a JSON object"
ERROR_LABEL = "label is required (a non-empty string of at most 255 characters)"
ERROR_SCORE_MAXIMUM = "scoreMaximum is required and must be a number greater than 0"
ERROR_TEXT = "{field} must be a string of at most 255 characters"
ERROR_DATE = "{field} must be an ISO 8601 date-time with a time zone"
ERROR_RESOURCE_LINK = "resourceLinkId is not a resource link of this context"
ERROR_ID_MISMATCH = "id does not match the line item's URL"
ERROR_USER_ID = "userId is required"
ERROR_NOT_MEMBER = "userId is not a member of this context"
ERROR_TIMESTAMP = "timestamp is required: an ISO 8601 date-time with a time zone"
ERROR_PROGRESS = "{field} must be one of {values}"
ERROR_SCORE_GIVEN = "scoreGiven must be a number of at least 0"
ERROR_SCORE_PAIR = "scoreMaximum is required with scoreGiven and must be greater than 0"
ERROR_COMMENT = "comment must be a string of at most 4000 characters"
ERROR_STALE = "a score with the same or a later timestamp is already recorded"
ERROR_GRADEBOOK = "the gradebook refused the write: {detail}"


class AgsError(ValueError):
    """A refused AGS request: ``status`` and a description for the tool."""

    def __init__(self, description: str, *, status: int = 400, error: str = "invalid_request"):
        super().__init__(description)
        self.description = description
        self.status = status
        self.error = error


# --- shapes -------------------------------------------------------------------------------------


def _number(value: decimal.Decimal | None) -> int | float | None:
    if value is None:
        return None
    return int(value) if value == value.to_integral_value() else float(value)


def line_item_url(item: AgsLineItem) -> str:
    return f"{claims_.absolute(claims_.context_path(item.context_id))}/lineitems/{item.pk}"


def line_item_json(item: AgsLineItem) -> dict[str, Any]:
    out: dict[str, Any] = {"id": line_item_url(item), "label": item.label,
                           "scoreMaximum": _number(item.score_maximum)}
    if item.resource_id:
        out["resourceId"] = item.resource_id
    if item.tag:
        out["tag"] = item.tag
    if item.resource_link_id:
        out["resourceLinkId"] = str(item.resource_link_id)
    if item.start_date_time:
        out["startDateTime"] = item.start_date_time.isoformat()
    if item.end_date_time:
        out["endDateTime"] = item.end_date_time.isoformat()
    return out


@dataclass(frozen=True)
class LineItemInput:
    label: str
    score_maximum: decimal.Decimal
    resource_id: str
    tag: str
    resource_link: ResourceLink | None
    start_date_time: dt.datetime | None
    end_date_time: dt.datetime | None


def _text(body: dict[str, Any], field: str) -> str:
    value = body.get(field)
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise AgsError(ERROR_TEXT.format(field=field))
    return value


def _datetime(body: dict[str, Any], field: str, *, required: bool = False,
              message: str | None = None) -> dt.datetime | None:
    value = body.get(field)
    if value is None and not required:
        return None
    parsed = parse_datetime(value) if isinstance(value, str) else None
    if parsed is None or parsed.tzinfo is None:
        raise AgsError(message or ERROR_DATE.format(field=field))
    return parsed


def _decimal(value: Any) -> decimal.Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = decimal.Decimal(str(value))
    except decimal.InvalidOperation:
        return None
    return number if number.is_finite() else None


def _link_of(context: LtiContext, link_id: Any) -> ResourceLink:
    try:
        pk = uuid.UUID(str(link_id))
    except ValueError:
        raise AgsError(ERROR_RESOURCE_LINK) from None
    link = ResourceLink.objects.filter(
        pk=pk, registration_id=context.registration_id, deployment_id=context.deployment_id,
        class_sourced_id=context.class_sourced_id,
    ).first()
    if link is None:
        raise AgsError(ERROR_RESOURCE_LINK)
    return link


def line_item_input(body: Any, *, context: LtiContext) -> LineItemInput:
    """A line item as the tool sent it, checked; a ``resourceLinkId`` must be of ``context``."""
    if not isinstance(body, dict):
        raise AgsError(ERROR_BODY)
    label = body.get("label")
    if not isinstance(label, str) or not label.strip() or len(label) > MAX_TEXT:
        raise AgsError(ERROR_LABEL)
    maximum = _decimal(body.get("scoreMaximum"))
    if maximum is None or maximum <= 0:
        raise AgsError(ERROR_SCORE_MAXIMUM)
    link_id = body.get("resourceLinkId")
    return LineItemInput(
        label=label.strip(), score_maximum=maximum, resource_id=_text(body, "resourceId"),
        tag=_text(body, "tag"),
        resource_link=_link_of(context, link_id) if link_id not in (None, "") else None,
        start_date_time=_datetime(body, "startDateTime"),
        end_date_time=_datetime(body, "endDateTime"),
    )


# --- line items ---------------------------------------------------------------------------------


def line_items_list(context: LtiContext, *, resource_link_id: str | None = None,
                    resource_id: str | None = None, tag: str | None = None,
                    limit: int = DEFAULT_LIMIT, offset: int = 0) -> tuple[list[AgsLineItem], bool]:
    """A page of the context's line items, filtered as the specification's query parameters."""
    qs = AgsLineItem.objects.filter(context=context)
    if resource_link_id is not None:
        try:
            qs = qs.filter(resource_link_id=uuid.UUID(resource_link_id))
        except ValueError:
            return [], False
    if resource_id is not None:
        qs = qs.filter(resource_id=resource_id)
    if tag is not None:
        qs = qs.filter(tag=tag)
    rows = list(qs.order_by("created_at", "id")[offset:offset + limit + 1])
    return rows[:limit], len(rows) > limit


def line_item_of(context: LtiContext, item_id: Any) -> AgsLineItem | None:
    """The line item, only if it belongs to ``context`` (an id of another context: None)."""
    return AgsLineItem.objects.select_related("context").filter(
        pk=item_id, context=context).first()


def _category_row(release: Release) -> dict[str, Any]:
    integration = release.integration
    return {"sourced_id": f"lti-{integration.pk}", "title": f"{integration.name} (LTI)"[:255]}


def _gradebook_row(item: AgsLineItem, klass: dict[str, Any], release: Release) -> dict[str, Any]:
    start = item.start_date_time or item.created_at or timezone.now()
    due = item.end_date_time or start
    terms = klass.get("term_sourced_ids") or []
    return {
        "sourced_id": item.line_item_sourced_id, "title": item.label, "description": None,
        "assign_date": timezone.localdate(start), "due_date": timezone.localdate(due),
        "class_sourced_id": klass["sourced_id"],
        "category_sourced_id": _category_row(release)["sourced_id"],
        "academic_session_sourced_id": terms[0] if terms else klass["sourced_id"],
        "result_value_min": decimal.Decimal(0), "result_value_max": item.score_maximum,
        "school_sourced_id": klass["school_sourced_id"],
    }


def released_class(release: Release, class_sourced_id: str) -> dict[str, Any] | None:
    return release.classes().filter(sourced_id=class_sourced_id).values(
        "sourced_id", "school_sourced_id", "term_sourced_ids").first()


def _write(release: Release, **changes: Any) -> None:
    try:
        gradebook_write(source=integration_source(integration=release.integration), **changes)
    except GradebookWriteError as exc:
        if exc.code == GUARD_REFUSED:  # the score guard: a newer score is recorded
            raise AgsError(ERROR_STALE, status=409, error="conflict") from None
        raise AgsError(ERROR_GRADEBOOK.format(detail=exc.message), status=409,
                       error="conflict") from None


def _apply(item: AgsLineItem, data: LineItemInput) -> None:
    item.label = data.label
    item.score_maximum = data.score_maximum
    item.resource_id = data.resource_id
    item.tag = data.tag
    item.resource_link = data.resource_link
    item.start_date_time = data.start_date_time
    item.end_date_time = data.end_date_time


def line_item_create(*, context: LtiContext, release: Release, klass: dict[str, Any],
                     data: LineItemInput) -> AgsLineItem:
    """Create a line item in ``context`` and its gradebook column, owned by the tool."""
    item_id = uuid.uuid4()
    item = AgsLineItem(id=item_id, context=context, line_item_sourced_id=f"lti-{item_id}")
    _apply(item, data)
    with transaction.atomic():
        item.save(force_insert=True)
        _write(release, upserts={"categories": [_category_row(release)],
                                 "lineItems": [_gradebook_row(item, klass, release)]})
    return item


def line_item_update(*, item: AgsLineItem, release: Release, klass: dict[str, Any],
                     data: LineItemInput) -> AgsLineItem:
    """Update a line item and its gradebook column. A new ``scoreMaximum`` rescales the
    results already recorded, in the same version: each is its score as sent, scaled to
    the new maximum, so the SIS never reads 7 out of 20 for what the tool sent as 7/10."""
    old_maximum = item.score_maximum
    _apply(item, data)
    with transaction.atomic():
        item.save()
        upserts = {"categories": [_category_row(release)],
                   "lineItems": [_gradebook_row(item, klass, release)]}
        if item.score_maximum != old_maximum:
            # only for the class's members as the release shows them now: an excluded pupil,
            # or one out of scope, receives no result from the tool, not even a rescaled one
            members = set(class_members(release, item.context.class_sourced_id))
            upserts["results"] = [
                _result_row(item, score, user_sourced_id=score.user_sourced_id,
                            result_id=score.result_sourced_id)
                for score in item.scores.order_by("id") if score.user_sourced_id in members
            ]
        _write(release, upserts=upserts)
    return item


def line_item_delete(*, item: AgsLineItem, release: Release) -> None:
    """Delete a line item, its gradebook column and the results the tool wrote to it."""
    with transaction.atomic():
        results = list(item.scores.values_list("result_sourced_id", flat=True))
        _write(release, upserts={},
               deletes={"lineItems": [item.line_item_sourced_id], "results": results})
        item.delete()


# --- scores -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoreInput:
    user_id: str
    timestamp: dt.datetime
    score_given: decimal.Decimal | None
    score_maximum: decimal.Decimal | None
    activity_progress: str
    grading_progress: str
    comment: str


def score_input(body: Any) -> ScoreInput:
    if not isinstance(body, dict):
        raise AgsError(ERROR_BODY)
    user_id = body.get("userId")
    if not isinstance(user_id, str) or not user_id or len(user_id) > MAX_TEXT:
        raise AgsError(ERROR_USER_ID)
    timestamp = _datetime(body, "timestamp", required=True, message=ERROR_TIMESTAMP)
    assert timestamp is not None
    progress = {}
    for field, values in (("activityProgress", ACTIVITY_PROGRESS),
                          ("gradingProgress", GRADING_PROGRESS)):
        value = body.get(field)
        if value not in values:
            raise AgsError(ERROR_PROGRESS.format(field=field, values=", ".join(values)))
        progress[field] = value
    given = maximum = None
    if body.get("scoreGiven") is not None:
        given = _decimal(body["scoreGiven"])
        if given is None or given < 0:
            raise AgsError(ERROR_SCORE_GIVEN)
        maximum = _decimal(body.get("scoreMaximum"))
        if maximum is None or maximum <= 0:
            raise AgsError(ERROR_SCORE_PAIR)
    comment = body.get("comment") or ""
    if not isinstance(comment, str) or len(comment) > MAX_COMMENT:
        raise AgsError(ERROR_COMMENT)
    return ScoreInput(user_id=user_id, timestamp=timestamp, score_given=given,
                      score_maximum=maximum, activity_progress=progress["activityProgress"],
                      grading_progress=progress["gradingProgress"], comment=comment)


# The school's ids of a class's released members: people the release shows (org scope,
# exclusions) with an enrolment in the class it shows. Composed from ``Release._filtered``,
# the release's one definition of visibility, and compiled once per org scope and
# exclusions (all ``_filtered`` reads): a tool posts one score per request.
MEMBERS_SQL = (
    "SELECT u.sourced_id FROM ({users}) u WHERE EXISTS (SELECT 1 FROM ({enrolled}) e "  # noqa: S608
    "WHERE e.user_sourced_id = u.sourced_id AND e.class_sourced_id = %s)"
)
_MEMBERS_SQL_MAX = 256
_members_sql_cache: OrderedDict[tuple, tuple[str, tuple]] = OrderedDict()
_members_sql_lock = threading.Lock()


def _members_sql(release: Release) -> tuple[str, tuple] | None:
    """The members statement of ``release`` and its parameters before the class id (None:
    the release shows no member of any class, as ``members_query`` would return none)."""
    if not (release.live and release.org_sourced_ids and release.columns("users")
            and release.columns("enrollments")):
        return None
    excluded = release.excluded_user_sourced_ids
    key = (release.org_array, excluded)
    with _members_sql_lock:
        hit = _members_sql_cache.get(key)
        if hit is not None:
            _members_sql_cache.move_to_end(key)
            return hit
    users, users_params = (release._filtered("users", excluded=excluded)
                           .values("sourced_id").query.sql_with_params())
    enrolled, enrolled_params = (release._filtered("enrollments", excluded=excluded)
                                 .values("user_sourced_id", "class_sourced_id")
                                 .query.sql_with_params())
    compiled = (MEMBERS_SQL.format(users=users, enrolled=enrolled),
                (*users_params, *enrolled_params))
    with _members_sql_lock:
        _members_sql_cache[key] = compiled
        while len(_members_sql_cache) > _MEMBERS_SQL_MAX:
            _members_sql_cache.popitem(last=False)
    return compiled


def member_sourced_id(release: Release, class_sourced_id: str, user_id: str) -> str | None:
    """The school's id of the class member the tool calls ``user_id`` (None: no such
    visible member: unknown, left, out of scope or excluded, all alike).

    One query for the class's released members (the same people ``nrps.members_query``
    lists), pseudonyms computed in bulk here: a class is small, and it does not depend on
    the hub-wide reverse map being filled (concurrent first lookups of that map can miss)."""
    members = class_members(release, class_sourced_id)
    pseudonyms = nrps.member_pseudonymiser(release).pseudonyms(members)
    return next((sid for sid, pseudonym in pseudonyms.items() if pseudonym == user_id), None)


def class_members(release: Release, class_sourced_id: str) -> list[str]:
    """The school's ids of the class's released members (one query)."""
    compiled = _members_sql(release)
    if compiled is None:
        return []
    sql, params = compiled
    with connection.cursor() as cursor:
        prepared.execute(cursor, prepared.statement(sql, generic=True),
                         [*params, class_sourced_id])
        return [sid for (sid,) in cursor.fetchall()]


def _result_row(item: AgsLineItem, score: ScoreInput | AgsScore, *, user_sourced_id: str,
                result_id: str) -> dict[str, Any]:
    """The gradebook result a score makes: scaled to the line item's maximum (AGS
    ``resultScore`` semantics; above the maximum kept as sent; no ``scoreGiven``, no score)."""
    scaled = None
    if score.score_given is not None and score.score_maximum:
        scaled = score.score_given * item.score_maximum / score.score_maximum
        scaled = scaled.quantize(decimal.Decimal("0.000001"))
    return {
        "sourced_id": result_id, "line_item_sourced_id": item.line_item_sourced_id,
        "student_sourced_id": user_sourced_id, "score_status": _score_status(score),
        "score": scaled, "score_date": timezone.localdate(score.timestamp),
        "comment": score.comment or None, "class_sourced_id": item.context.class_sourced_id,
        "in_progress": score.activity_progress in ("Started", "InProgress"),
    }


def _score_status(score: ScoreInput | AgsScore) -> str:
    if score.grading_progress == "FullyGraded":
        return "fully graded"
    if score.activity_progress in ("Submitted", "Completed"):
        return "submitted"
    return "not submitted"


SCORE_UPSERT_SQL = """
INSERT INTO lti_agsscore AS s (line_item_id, user_sourced_id, result_sourced_id, timestamp,
    score_given, score_maximum, activity_progress, grading_progress, comment, updated_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, now())
ON CONFLICT (line_item_id, user_sourced_id) DO UPDATE SET
    timestamp = EXCLUDED.timestamp, score_given = EXCLUDED.score_given,
    score_maximum = EXCLUDED.score_maximum, activity_progress = EXCLUDED.activity_progress,
    grading_progress = EXCLUDED.grading_progress, comment = EXCLUDED.comment, updated_at = now()
WHERE s.timestamp < EXCLUDED.timestamp
RETURNING s.id
"""


def result_sourced_id(item: AgsLineItem, user_sourced_id: str) -> str:
    digest = hashlib.sha256(f"{item.pk}\x00{user_sourced_id}".encode()).hexdigest()[:24]
    return f"lti-{item.pk}-{digest}"


def score_submit(*, item: AgsLineItem, release: Release, score: ScoreInput) -> None:
    """Record a score for a member of the item's class, unless a newer one is recorded.

    The result row carries the score scaled to the line item's maximum (AGS ``resultScore``
    semantics); a score above the maximum is kept as sent; a missing ``scoreGiven`` clears
    the score. Raises ``AgsError`` for a non-member (or an excluded pupil) and a stale score.
    """
    class_id = item.context.class_sourced_id
    person = member_sourced_id(release, class_id, score.user_id)
    if person is None:
        raise AgsError(ERROR_NOT_MEMBER)
    result_id = result_sourced_id(item, person)
    # The score is recorded (only if newer) in the gradebook write's own transaction, as
    # its guard: a stale score writes nothing, and a refused write records no score.
    _write(release, upserts={"results": [
        _result_row(item, score, user_sourced_id=person, result_id=result_id),
    ]}, guard=(SCORE_UPSERT_SQL, [
        item.pk, person, result_id, score.timestamp, score.score_given,
        score.score_maximum, score.activity_progress, score.grading_progress,
        score.comment,
    ]))


# --- results ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResultsPage:
    results: list[dict[str, Any]]
    user_sourced_ids: list[str]
    has_more: bool


def results_list(*, item: AgsLineItem, release: Release, user_id: str | None = None,
                 limit: int = DEFAULT_LIMIT, offset: int = 0) -> ResultsPage:
    """The released results of a line item (one query): excluded pupils' results are
    withheld by the release like any other row about them."""
    raw = dataclasses.replace(release, pseudonymiser=IDENTITY)
    qs = raw.results().filter(line_item_sourced_id=item.line_item_sourced_id)
    if user_id is not None:
        person = member_sourced_id(release, item.context.class_sourced_id, user_id)
        if person is None:
            return ResultsPage(results=[], user_sourced_ids=[], has_more=False)
        qs = qs.filter(student_sourced_id=person)
    columns = set(release.columns("results"))
    wanted = [c for c in ("score", "comment") if c in columns]
    rows = list(
        qs.annotate(member_id=nrps.member_pseudonymiser(release).sql("student_sourced_id"))
        .values("student_sourced_id", "member_id", *wanted)
        .order_by("student_sourced_id")[offset:offset + limit + 1]
    )
    has_more = len(rows) > limit
    rows = rows[:limit]
    url = line_item_url(item)
    out = []
    for row in rows:
        result: dict[str, Any] = {"id": f"{url}/results/{row['member_id']}", "scoreOf": url,
                                  "userId": row["member_id"]}
        if row.get("score") is not None:
            result["resultScore"] = _number(row["score"])
            result["resultMaximum"] = _number(item.score_maximum)
        if row.get("comment"):
            result["comment"] = row["comment"]
        out.append(result)
    return ResultsPage(results=out, user_sourced_ids=[r["student_sourced_id"] for r in rows],
                       has_more=has_more)
