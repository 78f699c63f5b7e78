"""The gradebook endpoints: reads over the release (the rostering renderer and query
grammar), and PUT, DELETE and POST writes through the roster's gradebook service.

Order of checks, as for rostering: token (401), rate limit (429), release live (401),
service and scope (403), body (422), path objects (404), ownership (403); then the write,
one new roster version owned by the writing integration. Every request leaves an access
record (the audit chain records governance decisions, not scores).

A write runs in its own short transaction (the roster's version allocation is hub-wide,
so nothing slow may happen while it is held): the release and the references are read
first, then ``gradebook_write`` commits, then the stored object is rendered for the reply.
"""

# The extra() conditions name our own tables; their values are bound parameters.
# ruff: noqa: S610
from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import transaction
from django.http import HttpResponse, JsonResponse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from apps.audit.models import Channel
from apps.audit.services import access_record
from apps.governance.release import release_for
from apps.oneroster_api import entities as E
from apps.oneroster_api import gradebook as G
from apps.oneroster_api import pages, render
from apps.oneroster_api.auth import Caller, authenticate, rate_limit_check, recorded_as
from apps.oneroster_api.endpoints import Endpoint, Parent
from apps.oneroster_api.errors import (
    FORBIDDEN,
    INTERNAL_SERVER_ERROR,
    INVALID_DATA,
    MSG_FORBIDDEN_SCOPE,
    MSG_INTERNAL,
    MSG_UNAUTHORISED,
    MSG_UNKNOWN_OBJECT,
    UNAUTHORISED,
    UNKNOWN_OBJECT,
    ApiError,
    status_info,
    status_response,
)
from apps.oneroster_api.query import (
    check_fields,
    compile_filter,
    parse_fields,
    parse_list_params,
    sort_field,
)
from apps.oneroster_api.views import _by_id, _IntegrationRef, _narrow, _stored_id
from apps.roster import gradebook as roster_gradebook
from apps.roster.models import Result

logger = logging.getLogger(__name__)

MSG_FORBIDDEN_SERVICE = "This client is not approved for the OneRoster gradebook."
MSG_NOT_OWNER = (
    "{type} {sourced_id} belongs to another source (the SIS or another tool); "
    "only its owner may change or delete it."
)
MSG_RESULTS_OF_OTHERS = (
    "lineItem {sourced_id} has results that another source (the SIS or another tool) owns; "
    "deleting it would orphan them."
)
MSG_INVALID_BODY = "The {type} is not valid: {details}"
MSG_BAD_VALUE = "A value does not fit: {detail}"
MSG_METHOD = "This endpoint supports {methods}."
MSG_TOO_LARGE = "The body is too large; post fewer objects at once."
UNPROCESSABLE = 422


def base_url() -> str:
    return settings.INTERCHANGE_PUBLIC_URL + G.BASE_PATH


def href_base() -> str:
    return settings.INTERCHANGE_PUBLIC_URL + G.HREF_BASE_PATH


class _Unprocessable(ApiError):
    """422 ``invaliddata`` listing every problem of the body."""

    def __init__(self, type_: str, problems: G.Problems) -> None:
        super().__init__(INVALID_DATA, MSG_INVALID_BODY.format(
            type=type_, details=problems.describe()), status=UNPROCESSABLE)
        self.problems = problems

    def response(self) -> HttpResponse:
        body = status_info(self.code_minor, self.description)
        body["imsx_details"] = self.problems.as_list()
        return HttpResponse(json.dumps(body), status=self.status,
                            content_type="application/json")


def _entity_of(name: str) -> E.Entity:
    return G.ENTITIES.get(name) or E.ENTITIES[name]


@method_decorator(csrf_exempt, name="dispatch")
class GradebookApi(View):
    """One gradebook route: a read ``endpoint`` (GET), and/or writes of ``write_entity``
    (PUT and DELETE on a single object's path), and/or a ``post_endpoint``."""

    endpoint: Endpoint | None = None
    write_entity: E.Entity | None = None
    post_endpoint: G.PostEndpoint | None = None
    pattern: str = ""
    http_method_names = ["get", "post", "put", "patch", "delete", "head", "options"]

    def _handlers(self) -> dict[str, Callable]:
        handlers: dict[str, Callable] = {}
        if self.endpoint is not None:
            handlers["GET"] = self.read
        if self.write_entity is not None:
            handlers["PUT"] = self.put_object
            handlers["DELETE"] = self.delete_object
        if self.post_endpoint is not None:
            handlers["POST"] = self.post_objects
        return handlers

    def dispatch(self, request, *args, **kwargs):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        caller: Caller | None = None
        refusal: ApiError | None = None
        records = 0
        try:
            handlers = self._handlers()
            handler = handlers.get(request.method)
            if handler is None:
                allowed = ", ".join(sorted(handlers))
                raise ApiError(INVALID_DATA, MSG_METHOD.format(methods=allowed), status=405,
                               headers={"Allow": allowed})
            caller = authenticate(request)
            rate_limit_check(caller)
            response, records = handler(request, caller, kwargs)
        except ApiError as error:
            refusal = error
            response = error.response()
        except Exception:
            logger.exception("OneRoster gradebook request failed")
            response = status_response(INTERNAL_SERVER_ERROR, MSG_INTERNAL)
        integration_id, client_id = recorded_as(caller, refusal)
        access_record(
            integration_id=integration_id,
            channel=Channel.ONEROSTER_REST,
            endpoint=f"{request.method} {G.BASE_PATH}{self.pattern}",
            status_code=response.status_code,
            records=records,
            duration_ms=int((time.perf_counter() - started) * 1000),
            client_id=client_id,
        )
        return response

    # --- shared checks ------------------------------------------------------------------------

    def _release(self, caller: Caller, scopes: frozenset[str]):  # type: ignore[no-untyped-def]
        release = release_for(_IntegrationRef(caller.integration_id),
                              generations=caller.generations)
        if not release.live:
            raise ApiError(UNAUTHORISED, MSG_UNAUTHORISED,
                           headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        if not release.allows_service(G.SERVICE):
            raise ApiError(FORBIDDEN, MSG_FORBIDDEN_SERVICE)
        if not (scopes & caller.scopes & release.scopes):
            raise ApiError(FORBIDDEN, MSG_FORBIDDEN_SCOPE.format(scopes=" ".join(sorted(scopes))))
        return release

    def _parent(self, release, parent: Parent, visible_id: str, ids, orgs) -> str:  # type: ignore[no-untyped-def]
        """The stored id of a path object the release shows (404 otherwise). Checked on the
        release's rows whether or not the parent's columns are projected: a gradebook
        client need not be approved to read classes to address one."""
        entity = _entity_of(parent.entity)
        stored = _stored_id(release, parent.entity, visible_id)
        if stored is not None:
            qs = G._visible(release, parent.entity, [stored])
            qs = _narrow(qs, parent.conditions({**ids, parent.param: stored}, orgs))
            if qs.exists():
                return stored
        raise ApiError(UNKNOWN_OBJECT, MSG_UNKNOWN_OBJECT.format(
            type=parent.label or entity.singular, sourced_id=visible_id))

    def _parents(self, release, parents, kwargs) -> dict[str, str]:  # type: ignore[no-untyped-def]
        orgs = release.org_array
        ids: dict[str, str] = {}
        for parent in parents:
            ids[parent.param] = self._parent(release, parent, kwargs[parent.param], ids, orgs)
        return ids

    # --- reads --------------------------------------------------------------------------------

    def read(self, request, caller: Caller, kwargs):  # type: ignore[no-untyped-def]
        ep = self.endpoint
        assert ep is not None
        # One transaction: the release, the count and the page read one snapshot.
        with transaction.atomic():
            release = self._release(caller, ep.scopes)
            entity = ep.entity
            projection = release.columns(entity.name)
            if not projection:
                raise ApiError(FORBIDDEN, MSG_FORBIDDEN_SCOPE.format(scopes=entity.plural))
            available = {f.name: f for f in E.available_fields(entity, projection)}
            ids = self._parents(release, ep.parents, kwargs)
            orgs = release.org_array
            if ep.single:
                fields = check_fields(parse_fields(request.GET), available)
                return self._single(release, ep, fields, kwargs["sourced_id"], ids, orgs)
            params = parse_list_params(request.GET)
            fields = check_fields(params.fields, available)
            return self._collection(request, release, ep, available, fields, params, ids, orgs)

    def _single(self, release, ep: Endpoint, fields, visible_id: str, ids, orgs):  # type: ignore[no-untyped-def]
        entity = ep.entity
        qs = _by_id(release.queryset(entity.name), entity, release, visible_id)
        row = None
        if qs is not None:
            row = pages.render_one(release, entity, _narrow(qs, ep.conditions(ids, orgs)), fields,
                                   href_base=href_base())
        if row is None:
            raise ApiError(UNKNOWN_OBJECT, MSG_UNKNOWN_OBJECT.format(
                type=entity.singular, sourced_id=visible_id))
        body = '{"' + ep.key + '":' + row + "}"
        return HttpResponse(body, content_type="application/json"), 1

    def _collection(self, request, release, ep: Endpoint, available, fields, params, ids, orgs):  # type: ignore[no-untyped-def]
        entity = ep.entity
        qs = _narrow(release.queryset(entity.name), ep.conditions(ids, orgs))
        if params.filter is not None:
            qs = qs.filter(compile_filter(params.filter, entity, available))
        sort = sort_field(params, entity, available)
        version = render.roster_version()
        key = render.stats_key(
            render.release_fingerprint(release), version, "gradebook", ep.name,
            sorted(ids.items()), params.filter.canonical() if params.filter else "",
        )
        stats = render.page_stats(qs, key, release=release, entity=entity, version=version)
        return pages.collection_response(
            request, release=release, qs=qs, entity=entity, key=ep.key, fields=fields,
            params=params, sort=sort, stats=stats, href_base=href_base(),
            service_url=base_url(), base_path=G.BASE_PATH,
        )


    # --- writes -------------------------------------------------------------------------------

    def _writable(self, release, entity: E.Entity) -> None:  # type: ignore[no-untyped-def]
        if not release.columns(entity.name):
            raise ApiError(FORBIDDEN, MSG_FORBIDDEN_SCOPE.format(scopes=entity.plural))

    @staticmethod
    def _body(request) -> object:  # type: ignore[no-untyped-def]
        try:
            return json.loads(request.body or b"null")
        except RequestDataTooBig as exc:
            raise ApiError(INVALID_DATA, MSG_TOO_LARGE, status=413) from exc
        except (ValueError, UnicodeDecodeError):
            return None

    def _write(self, release, *, upserts=None, deletes=None):  # type: ignore[no-untyped-def]
        source = roster_gradebook.integration_source(integration=release.integration)
        try:
            return roster_gradebook.gradebook_write(
                source=source, upserts=upserts or {}, deletes=deletes or {}
            )
        except roster_gradebook.GradebookWriteError as refused:
            if refused.code == roster_gradebook.NOT_OWNER:
                entity = G.ENTITIES[refused.entity]
                raise ApiError(FORBIDDEN, MSG_NOT_OWNER.format(
                    type=entity.singular, sourced_id=refused.sourced_id)) from refused
            problems = G.Problems()
            problems.add(refused.column or refused.entity or "body", refused.message)
            raise _Unprocessable(refused.entity or "body", problems) from refused

    def _results_of_line_item(self, release, line_item_id: str) -> list[str]:  # type: ignore[no-untyped-def]
        """The results a line item's deletion takes with it: the writer's own (in the same
        version). Results another source owns would be orphaned, so they refuse it (403)."""
        source = roster_gradebook.integration_source(integration=release.integration)
        owned = Result.objects.filter(valid_to_version__isnull=True,
                                      line_item_sourced_id=line_item_id)
        foreign = owned.exclude(source=source).values_list("sourced_id", flat=True).first()
        if foreign is not None:
            raise ApiError(FORBIDDEN, MSG_RESULTS_OF_OTHERS.format(sourced_id=line_item_id))
        return list(owned.values_list("sourced_id", flat=True))

    def put_object(self, request, caller: Caller, kwargs):  # type: ignore[no-untyped-def]
        entity = self.write_entity
        assert entity is not None
        release = self._release(caller, frozenset({G.CREATE_PUT}))
        self._writable(release, entity)
        sourced_id = kwargs["sourced_id"]
        body = self._body(request)
        problems = G.Problems()
        if not isinstance(body, dict) or set(body) != {entity.singular}:
            problems.add("body", G.MSG_BODY_WRAPPER.format(key=entity.singular))
            raise _Unprocessable(entity.singular, problems)
        parsed = G.parse_object(entity, body[entity.singular], entity.singular, problems,
                                sourced_id=sourced_id)
        if parsed is not None:
            G.check_references(release, entity, [parsed], problems)
        if problems or parsed is None:
            raise _Unprocessable(entity.singular, problems)
        outcome = self._write(release, upserts={entity.name: [parsed.row]})
        created = outcome.was_created(entity.name, sourced_id)
        # unchanged (a tool resending a score): the stored row, identical in content,
        # keeps its date; either way the reply is rendered without reading the row back
        written_at = outcome.written_at
        if written_at is None:
            written_at = outcome.unchanged_since.get(entity.name, {}).get(sourced_id)
        fields = E.available_fields(entity, release.columns(entity.name))
        rendered = G.render_written(entity, parsed, fields, written_at=written_at,
                                    href_base=href_base())
        body_text = '{"' + entity.singular + '":' + rendered + "}"
        return HttpResponse(body_text, status=201 if created else 200,
                            content_type="application/json"), 1

    def delete_object(self, request, caller: Caller, kwargs):  # type: ignore[no-untyped-def]
        entity = self.write_entity
        assert entity is not None
        release = self._release(caller, frozenset({G.DELETE}))
        self._writable(release, entity)
        sourced_id = kwargs["sourced_id"]
        deletes = {entity.name: [sourced_id]}
        if entity is G.LINE_ITEM:
            deletes["results"] = self._results_of_line_item(release, sourced_id)
        outcome = self._write(release, deletes=deletes)
        if outcome.missing:
            raise ApiError(UNKNOWN_OBJECT, MSG_UNKNOWN_OBJECT.format(
                type=entity.singular, sourced_id=sourced_id))
        return HttpResponse(status=204), 1

    def post_objects(self, request, caller: Caller, kwargs):  # type: ignore[no-untyped-def]
        post = self.post_endpoint
        assert post is not None
        entity = post.entity
        release = self._release(caller, frozenset({G.CREATE_POST}))
        self._writable(release, entity)
        ids = self._parents(release, post.parents, kwargs)
        body = self._body(request)
        problems = G.Problems()
        objects = body.get(entity.plural) if isinstance(body, dict) else None
        if not isinstance(objects, list) or not objects or set(body) != {entity.plural}:  # type: ignore[arg-type]
            problems.add("body", G.MSG_BODY_WRAPPER.format(key=entity.plural))
            raise _Unprocessable(entity.plural, problems)
        if len(objects) > G.MAX_POST:
            problems.add(entity.plural, G.MSG_TOO_MANY.format(limit=G.MAX_POST))
            raise _Unprocessable(entity.plural, problems)
        fixed = {name: ids[param] for name, param in post.fixed.items()}
        parsed_all = []
        for n, obj in enumerate(objects):
            where = f"{entity.plural}[{n}]"
            if isinstance(obj, dict):
                obj = dict(obj)
                for name, stored in fixed.items():
                    if name == "academicSession" and entity is G.RESULT:
                        continue  # a result names no session: its line item does
                    given = obj.get(name)
                    given_id = given.get("sourcedId") if isinstance(given, dict) else None
                    if given is not None and given_id != kwargs[post.fixed[name]]:
                        problems.add(f"{where}.{name}.sourcedId", G.MSG_ID_MISMATCH.format(
                            path=kwargs[post.fixed[name]]))
                    obj[name] = {"sourcedId": stored}
            parsed = G.parse_object(entity, obj, where, problems, sourced_id=None)
            if parsed is not None:
                parsed_all.append(parsed)
        G.check_references(release, entity, parsed_all, problems, fixed=fixed)
        if problems:
            raise _Unprocessable(entity.plural, problems)
        self._write(release, upserts={entity.name: [p.row for p in parsed_all]})
        pairs = [{"suppliedSourcedId": p.supplied_id or "", "allocatedSourcedId":
                  p.row["sourced_id"]} for p in parsed_all]
        return JsonResponse({"sourcedIdPairs": pairs}, status=201), len(parsed_all)
