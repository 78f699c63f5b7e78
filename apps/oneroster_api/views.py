"""The rostering endpoints: thin views over the release, the query grammar and the renderer.

Order of checks on every request: token (401), rate limit (429), release live (401: a
suspended, offboarded or revoked integration is unauthorised from its next request),
service and scope (403), parameters (400), path objects (404); then one statement renders
the page. Every request, refused or not, leaves an access record; a page that disclosed
people queues them for the disclosure ledger (one INSERT; folded in within seconds by
``disclosures_flush``) before the response leaves.
"""

# The extra() conditions name our own tables; their values are bound parameters.
# ruff: noqa: S610
from __future__ import annotations

import dataclasses
import logging
import time

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.http import HttpResponse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from apps.audit.models import Channel
from apps.audit.services import access_record
from apps.governance.release import PSEUDONYMISED_COLUMNS, release_for
from apps.oneroster_api import entities as E
from apps.oneroster_api import pages, render
from apps.oneroster_api.auth import Caller, authenticate, rate_limit_check, recorded_as
from apps.oneroster_api.endpoints import BASE_PATH, Endpoint, Parent
from apps.oneroster_api.errors import (
    FORBIDDEN,
    INTERNAL_SERVER_ERROR,
    INVALID_DATA,
    MSG_FORBIDDEN_SCOPE,
    MSG_FORBIDDEN_SERVICE,
    MSG_INTERNAL,
    MSG_METHOD,
    MSG_UNAUTHORISED,
    MSG_UNKNOWN_ENDPOINT,
    MSG_UNKNOWN_OBJECT,
    UNAUTHORISED,
    UNKNOWN_OBJECT,
    ApiError,
    status_response,
)
from apps.oneroster_api.query import (
    ListParams,
    check_fields,
    compile_filter,
    parse_fields,
    parse_list_params,
    sort_field,
)

logger = logging.getLogger(__name__)

SERVICE = "oneroster.rostering"
# Entities whose sourcedId is a person's id (mapped back through the pseudonym map).
_PERSON_KEYED = frozenset({"users", "demographics"})
# Entities whose rows an exclusion can withhold (each refers to a person).
_WITHHELD_ENTITIES = frozenset({"users", "enrollments", "demographics"})


def base_url() -> str:
    return settings.INTERCHANGE_PUBLIC_URL + BASE_PATH


class _IntegrationRef:
    """Just enough of an integration for ``release_for``, which reads it afresh."""

    def __init__(self, pk: int) -> None:
        self.pk = pk


def _stored_id(release, entity: str, visible_id: str) -> str | None:  # type: ignore[no-untyped-def]
    """The stored sourcedId behind an id the client sent (None: no such person)."""
    if release.pseudonymised and entity in _PERSON_KEYED:
        return release.pseudonymiser.reverse([visible_id]).get(visible_id)
    return visible_id


def _by_id(qs, entity: E.Entity, release, visible_id: str):  # type: ignore[no-untyped-def]
    """Narrow to one record by the id the client sees; None when it cannot exist."""
    stored = _stored_id(release, entity.name, visible_id)
    if stored is None:
        return None
    qs = qs.extra(where=[f'"{entity.table}"."sourced_id" = %s'], params=[stored])
    if release.pseudonymised and "sourced_id" in PSEUDONYMISED_COLUMNS.get(entity.name, ()):
        qs = qs.filter(sourced_id=visible_id)
    return qs


def _count_withheld(release, entity: str, *, probed_person: str | None = None) -> None:  # type: ignore[no-untyped-def]
    """Count what the exclusions withheld from this vendor (never shown to it).

    A lookup that names an excluded person (``GET /users/{id}``, ``/students/{id}/classes``)
    is an attempt that touched them and is counted every time. Listings are counted once
    per integration, entity and day: the exclusion withheld those rows from the vendor's
    view that day, however many pages the vendor read.
    """
    if not release.exclusions:
        return
    if probed_person is not None:
        if probed_person in release.excluded_user_sourced_ids:
            # only the exclusions of the person asked for
            probed = {pk: person for pk, person in release.exclusions.items()
                      if person == probed_person}
            dataclasses.replace(
                release, exclusions=probed, excluded_user_sourced_ids=frozenset({probed_person})
            ).record_withheld(entities=["users"])
        return
    if entity not in _WITHHELD_ENTITIES:
        return
    day = timezone.localdate(release.at).isoformat()
    if cache.add(f"or:withheld:{release.integration.pk}:{entity}:{day}", 1, 86400):
        release.record_withheld(entities=[entity])


def _narrow(qs, conditions):  # type: ignore[no-untyped-def]
    for sql, params in conditions:
        qs = qs.extra(where=[sql], params=params)
    return qs


@method_decorator(csrf_exempt, name="dispatch")
class RosteringApi(View):
    """One rostering operation (collection, single or nested), configured by ``endpoint``."""

    endpoint: Endpoint | None = None
    http_method_names = ["get", "post", "put", "patch", "delete", "head", "options"]

    def dispatch(self, request, *args, **kwargs):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        caller: Caller | None = None
        refusal: ApiError | None = None
        records = 0
        try:
            if request.method != "GET":
                raise ApiError(INVALID_DATA, MSG_METHOD, status=405, headers={"Allow": "GET"})
            caller = authenticate(request)
            rate_limit_check(caller)
            # One transaction: the release, the count and the page read one snapshot, and
            # a failure rolls back cleanly before the access record is written.
            self.probes: list = []
            with transaction.atomic():
                response, records = self.serve(request, caller, kwargs)
        except ApiError as error:
            refusal = error
            response = error.response()
            # a 404 for an excluded person rolled the request back; count the attempt anyway
            for release, person in getattr(self, "probes", ()):
                _count_withheld(release, "users", probed_person=person)
        except Exception:
            logger.exception("OneRoster request failed")
            response = status_response(INTERNAL_SERVER_ERROR, MSG_INTERNAL)
        assert self.endpoint is not None
        integration_id, client_id = recorded_as(caller, refusal)
        access_record(
            integration_id=integration_id,
            channel=Channel.ONEROSTER_REST,
            endpoint=BASE_PATH + self.endpoint.pattern,
            status_code=response.status_code,
            records=records,
            duration_ms=int((time.perf_counter() - started) * 1000),
            client_id=client_id,
        )
        return response

    # --- the request --------------------------------------------------------------------------

    def serve(self, request, caller: Caller, kwargs) -> tuple[HttpResponse, int]:  # type: ignore[no-untyped-def]
        ep = self.endpoint
        assert ep is not None
        release = release_for(_IntegrationRef(caller.integration_id),
                              generations=caller.generations)
        if not release.live:
            raise ApiError(UNAUTHORISED, MSG_UNAUTHORISED,
                           headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        if not release.allows_service(SERVICE):
            raise ApiError(FORBIDDEN, MSG_FORBIDDEN_SERVICE)
        if not (ep.scopes & caller.scopes & release.scopes):
            accepted = " ".join(sorted(ep.scopes))
            raise ApiError(FORBIDDEN, MSG_FORBIDDEN_SCOPE.format(scopes=accepted))
        entity = ep.entity
        projection = release.columns(entity.name)
        if not projection:
            raise ApiError(FORBIDDEN, MSG_FORBIDDEN_SCOPE.format(scopes=entity.plural))
        available = {
            f.name: f for f in E.available_fields(
                entity, projection, release.columns("roles"), release.columns("userProfiles")
            )
        }
        orgs = release.org_array

        ids = {}
        for parent in ep.parents:
            ids[parent.param] = self._parent(release, parent, kwargs[parent.param], ids, orgs)

        if ep.single:
            fields = check_fields(parse_fields(request.GET), available)
            return self._single(request, release, ep, fields, kwargs["sourced_id"], ids, orgs)
        params = parse_list_params(request.GET)
        fields = check_fields(params.fields, available)
        return self._collection(request, caller, release, ep, available, fields, params, ids, orgs)

    def _parent(self, release, parent: Parent, visible_id: str, ids, orgs) -> str:  # type: ignore[no-untyped-def]
        entity = E.ENTITIES[parent.entity]
        qs = release.queryset(parent.entity)
        qs = _by_id(qs, entity, release, visible_id)
        if qs is not None:
            stored = _stored_id(release, parent.entity, visible_id)
            qs = _narrow(qs, parent.conditions({**ids, parent.param: stored}, orgs))
            if qs.exists():
                return stored  # type: ignore[return-value]
            if parent.entity in _PERSON_KEYED:
                self.probes.append((release, stored))
        raise ApiError(UNKNOWN_OBJECT, MSG_UNKNOWN_OBJECT.format(
            type=parent.label or entity.singular, sourced_id=visible_id))

    def _single(self, request, release, ep: Endpoint, fields, visible_id: str, ids, orgs):  # type: ignore[no-untyped-def]
        entity = ep.entity
        qs = _by_id(release.queryset(entity.name), entity, release, visible_id)
        row = None
        if qs is not None:
            row = pages.render_one(release, entity, _narrow(qs, ep.conditions(ids, orgs)),
                                   fields, href_base=base_url())
        if row is None:
            if entity.name in _PERSON_KEYED:
                self.probes.append((release, _stored_id(release, entity.name, visible_id)))
            raise ApiError(UNKNOWN_OBJECT, MSG_UNKNOWN_OBJECT.format(
                type=ep.label or entity.singular, sourced_id=visible_id))
        body = '{"' + ep.key + '":' + row + "}"
        return HttpResponse(body, content_type="application/json"), 1

    def _collection(self, request, caller, release, ep: Endpoint, available, fields,  # type: ignore[no-untyped-def]
                    params: ListParams, ids, orgs):
        entity = ep.entity
        qs = _narrow(release.queryset(entity.name), ep.conditions(ids, orgs))
        if params.filter is not None:
            qs = qs.filter(compile_filter(params.filter, entity, available))
        sort = sort_field(params, entity, available)
        version = render.roster_version()
        key = render.stats_key(
            render.release_fingerprint(release), version, ep.name,
            sorted(ids.items()), params.filter.canonical() if params.filter else "",
        )
        stats = render.page_stats(qs, key, release=release, entity=entity, version=version)
        _count_withheld(release, entity.name)
        return pages.collection_response(
            request, release=release, qs=qs, entity=entity, key=ep.key, fields=fields,
            params=params, sort=sort, stats=stats, href_base=base_url(),
            service_url=base_url(), base_path=BASE_PATH,
        )


def unknown_endpoint(request, *args, **kwargs) -> HttpResponse:  # type: ignore[no-untyped-def]
    return status_response(UNKNOWN_OBJECT, MSG_UNKNOWN_ENDPOINT)
