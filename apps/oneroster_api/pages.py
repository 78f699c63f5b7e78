"""A page of a OneRoster collection or one record, for rostering and gradebook alike.

The steps every list endpoint takes after it has its release queryset: the cached total
and anchors (``render.page_stats``), the anchored, sliced page rendered as JSON by one
statement, the people it disclosed queued for the ledger, and ``X-Total-Count`` and
``Link`` headers. Written once so the two services cannot drift apart.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.http import HttpResponse

from apps.oneroster_api import entities as E
from apps.oneroster_api import render
from apps.oneroster_api.query import ListParams, order_by
from apps.oneroster_api.services import disclosures_pending_add


def link_header(request, *, service_url: str, base_path: str, limit: int, offset: int,  # type: ignore[no-untyped-def]
                total: int) -> str:
    """RFC 8288 first/prev/next/last links, keeping the client's other query parameters."""
    def url(at: int) -> str:
        query = request.GET.copy()
        query["limit"] = str(limit)
        query["offset"] = str(at)
        return f"<{service_url}{request.path[len(base_path):]}?{urlencode(query, doseq=True)}>"

    last = max(((total - 1) // limit) * limit, 0)
    links = [f'{url(0)}; rel="first"']
    if offset > 0:
        links.append(f'{url(max(offset - limit, 0))}; rel="prev"')
    if offset + limit < total:
        links.append(f'{url(offset + limit)}; rel="next"')
    links.append(f'{url(last)}; rel="last"')
    return ", ".join(links)


def disclose(release, entity: E.Entity, fields, person_ids: list[str]) -> None:  # type: ignore[no-untyped-def]
    """Queue for the disclosure ledger the field classes a page showed of these people."""
    if not entity.person_column or not person_ids or release.vendor_id is None:
        return
    classes = release.column_classes.get(entity.name, {})
    disclosed = {classes[f.column] for f in fields if f.column and f.column in classes}
    for kind, embedded in ((E.ROLES, "roles"), (E.USER_PROFILES, "userProfiles")):
        if any(f.kind == kind for f in fields):
            embedded_classes = release.column_classes.get(embedded, {})
            disclosed |= {embedded_classes[c] for c in release.columns(embedded)
                          if c in embedded_classes}
    if disclosed:
        disclosures_pending_add(
            vendor_id=release.vendor_id, integration_id=release.integration.pk,
            field_classes=disclosed, user_sourced_ids=person_ids,
        )


def render_one(release, entity: E.Entity, qs, fields, *, href_base: str) -> str | None:  # type: ignore[no-untyped-def]
    """One record of ``qs`` as JSON text (None: there is none), its person disclosed."""
    inner = render.with_raw_ids(qs, entity).order_by()[:1]
    sql, params = render.page_sql(inner, fields, entity, release=release, base_url=href_base)
    rows = render.fetch(sql, params)
    if not rows.json_rows:
        return None
    disclose(release, entity, fields, rows.person_ids)
    return rows.json_rows[0]


def collection_response(  # type: ignore[no-untyped-def]
    request, *, release, qs, entity: E.Entity, key: str, fields, params: ListParams, sort,
    stats: render.Stats, href_base: str, service_url: str, base_path: str,
) -> tuple[HttpResponse, int]:
    """The page of ``qs`` the client asked for, with its headers; returns (response, rows)."""
    json_rows: list[str] = []
    if params.offset < stats.total:
        inner = render.with_raw_ids(qs, entity).order_by(*order_by(sort, params.descending))
        offset = params.offset
        if sort.column == "sourced_id":
            inner, offset = render.positioned(inner, stats, entity, offset=offset,
                                              limit=params.limit, descending=params.descending)
        inner = inner[offset:offset + params.limit]
        sql, sql_params = render.page_sql(inner, fields, entity, release=release,
                                          base_url=href_base)
        rows = render.fetch(sql, sql_params)
        json_rows = rows.json_rows
        disclose(release, entity, fields, rows.person_ids)
    body = '{"' + key + '":[' + ",".join(json_rows) + "]}"
    response = HttpResponse(body, content_type="application/json")
    response["X-Total-Count"] = str(stats.total)
    response["Link"] = link_header(request, service_url=service_url, base_path=base_path,
                                   limit=params.limit, offset=params.offset, total=stats.total)
    return response, len(json_rows)
