"""The OpenAPI document of the gradebook service, built from its route tables (as the
rostering one is from its own), so it cannot drift from what is served."""

from __future__ import annotations

from django.conf import settings
from django.http import JsonResponse

from apps.governance.scopes import ONEROSTER_SCOPES
from apps.oneroster_api import docs
from apps.oneroster_api import entities as E
from apps.oneroster_api import gradebook as G
from apps.oneroster_api.errors import HTTP_STATUS

_SCHEMA_OF_KIND = {
    **docs._SCHEMA_OF_KIND,
    E.NUMBER: {"type": "number"},
    E.SCALE_VALUES: {"type": "array", "items": {
        "type": "object", "properties": {"itemValueLHS": {"type": "string"},
                                         "itemValueRHS": {"type": "string"}}}},
}
_PAIRS = {"type": "object", "properties": {"sourcedIdPairs": {"type": "array", "items": {
    "type": "object", "properties": {"suppliedSourcedId": {"type": "string"},
                                     "allocatedSourcedId": {"type": "string"}}}}}}


def _ref(entity: E.Entity) -> dict:
    return {"$ref": f"#/components/schemas/{docs._schema_name(entity)}"}


def _params(pattern: str) -> list[dict]:
    return [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in docs._path_params(pattern)]


def openapi_document() -> dict:
    rostering = docs.openapi_document()
    schemas = {k: v for k, v in rostering["components"]["schemas"].items()
               if k in ("GUIDRef", "imsx_StatusInfo")}
    for entity in G.ENTITIES.values():
        schemas[docs._schema_name(entity)] = {
            "type": "object",
            "description": "Fields the integration is not approved for are absent.",
            "properties": {f.name: _SCHEMA_OF_KIND[f.kind] for f in entity.fields},
        }
    error = {"description": "imsx_StatusInfo", "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/imsx_StatusInfo"}}}}
    errors = {str(s): error for s in sorted({*HTTP_STATUS.values(), 422})}
    paths: dict = {}
    for ep in G.READ_ENDPOINTS:
        ref = _ref(ep.entity)
        body = ({"type": "object", "properties": {ep.key: ref}} if ep.single else
                {"type": "object", "properties": {ep.key: {"type": "array", "items": ref}}})
        parameters = _params(ep.pattern) + (
            [docs._QUERY_PARAMETERS[-1]] if ep.single else docs._QUERY_PARAMETERS)
        ops = paths.setdefault(ep.pattern, {})
        ops["get"] = {
            "operationId": ep.name, "parameters": parameters,
            "security": [{"OAuth2CC": sorted(ep.scopes)}],
            "responses": {"200": {"description": "OK", "content": {
                "application/json": {"schema": body}}}, **errors},
        }
        if ep.single:
            wrapped = {"type": "object", "properties": {ep.entity.singular: ref}}
            name = ep.entity.singular[0].upper() + ep.entity.singular[1:]
            ops["put"] = {
                "operationId": f"put{name}", "parameters": _params(ep.pattern),
                "security": [{"OAuth2CC": [G.CREATE_PUT]}],
                "requestBody": {"required": True,
                                "content": {"application/json": {"schema": wrapped}}},
                "responses": {"200": {"description": "Replaced"},
                              "201": {"description": "Created"}, **errors},
            }
            ops["delete"] = {
                "operationId": f"delete{name}", "parameters": _params(ep.pattern),
                "security": [{"OAuth2CC": [G.DELETE]}],
                "responses": {"204": {"description": "Deleted"}, **errors},
            }
    for post in G.POST_ENDPOINTS:
        many = {"type": "object", "properties": {
            post.entity.plural: {"type": "array", "items": _ref(post.entity)}}}
        paths.setdefault(post.pattern, {})["post"] = {
            "operationId": post.name, "parameters": _params(post.pattern),
            "security": [{"OAuth2CC": [G.CREATE_POST]}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": many}}},
            "responses": {"201": {"description": "Created", "content": {
                "application/json": {"schema": _PAIRS}}}, **errors},
        }
    public = settings.INTERCHANGE_PUBLIC_URL
    return {
        "openapi": "3.0.3",
        "info": {"title": "Interchange OneRoster 1.2 Gradebook", "version": "1.2",
                 "description": "OneRoster 1.2 REST gradebook: reads within the school's "
                                "approvals; writes owned by the writing integration."},
        "servers": [{"url": public + G.BASE_PATH}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"OAuth2CC": {"type": "oauth2", "flows": {"clientCredentials": {
                "tokenUrl": f"{public}/oauth/token", "scopes": dict(ONEROSTER_SCOPES),
            }}}},
        },
    }


def openapi_view(request):  # type: ignore[no-untyped-def]
    return JsonResponse(openapi_document())
