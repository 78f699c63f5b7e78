"""The OpenAPI document of the provider (built from the endpoint and entity tables, so it
cannot drift from what is served) and the vendor-facing "how to connect" page."""

from __future__ import annotations

from django.conf import settings
from django.http import JsonResponse
from django.shortcuts import render

from apps.governance.scopes import ONEROSTER_SCOPES
from apps.oneroster_api import entities as E
from apps.oneroster_api.endpoints import BASE_PATH, ENDPOINTS
from apps.oneroster_api.errors import HTTP_STATUS
from apps.oneroster_api.query import DEFAULT_LIMIT, max_limit

_SCHEMA_OF_KIND = {
    E.STR: {"type": "string"},
    E.STATUS: {"type": "string", "enum": ["active", "tobedeleted"]},
    E.DATETIME: {"type": "string", "format": "date-time"},
    E.DATE: {"type": "string", "format": "date"},
    E.BOOL: {"type": "string", "enum": ["true", "false"]},
    E.YEAR: {"type": "string"},
    E.STRLIST: {"type": "array", "items": {"type": "string"}},
    E.REF: {"$ref": "#/components/schemas/GUIDRef"},
    E.REFS: {"type": "array", "items": {"$ref": "#/components/schemas/GUIDRef"}},
    E.CHILDREN: {"type": "array", "items": {"$ref": "#/components/schemas/GUIDRef"}},
    E.USER_IDS: {"type": "array", "items": {
        "type": "object", "properties": {"type": {"type": "string"},
                                         "identifier": {"type": "string"}}}},
    E.ROLES: {"type": "array", "items": {"$ref": "#/components/schemas/Role"}},
    E.USER_PROFILES: {"type": "array", "items": {"$ref": "#/components/schemas/UserProfile"}},
}

_QUERY_PARAMETERS = [
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                 "default": DEFAULT_LIMIT}},
    {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0, "default": 0}},
    {"name": "sort", "in": "query", "schema": {"type": "string"}},
    {"name": "orderBy", "in": "query", "schema": {"type": "string", "enum": ["asc", "desc"]}},
    {"name": "filter", "in": "query", "schema": {"type": "string"}},
    {"name": "fields", "in": "query", "schema": {"type": "array", "items": {"type": "string"}},
     "style": "form", "explode": False},
]


def _schema_name(entity: E.Entity) -> str:
    return entity.singular[0].upper() + entity.singular[1:]


def openapi_document() -> dict:
    schemas: dict = {
        "GUIDRef": {"type": "object", "required": ["href", "sourcedId", "type"], "properties": {
            "href": {"type": "string", "format": "uri"}, "sourcedId": {"type": "string"},
            "type": {"type": "string"}}},
        "Role": {"type": "object", "properties": {
            "roleType": {"type": "string"}, "role": {"type": "string"},
            "org": {"$ref": "#/components/schemas/GUIDRef"},
            "userProfile": {"type": "string"},
            "beginDate": {"type": "string", "format": "date"},
            "endDate": {"type": "string", "format": "date"}}},
        "UserProfile": {"type": "object", "properties": {
            "profileId": {"type": "string"}, "profileType": {"type": "string"},
            "vendorId": {"type": "string"}, "applicationId": {"type": "string"},
            "description": {"type": "string"},
            "credentials": {"type": "array", "items": {"type": "object", "properties": {
                "type": {"type": "string"}, "username": {"type": "string"}}}}}},
        "imsx_StatusInfo": {"type": "object", "required": ["imsx_codeMajor", "imsx_severity"],
                            "properties": {
                                "imsx_codeMajor": {"type": "string"},
                                "imsx_severity": {"type": "string"},
                                "imsx_description": {"type": "string"},
                                "imsx_CodeMinor": {"type": "object"}}},
    }
    for entity in E.ENTITIES.values():
        schemas[_schema_name(entity)] = {
            "type": "object",
            "description": "Fields the integration is not approved for are absent.",
            "properties": {f.name: _SCHEMA_OF_KIND[f.kind] for f in entity.fields},
        }
    error = {"description": "imsx_StatusInfo", "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/imsx_StatusInfo"}}}}
    errors = {str(status): error for status in sorted(set(HTTP_STATUS.values()))}
    paths: dict = {}
    for ep in ENDPOINTS:
        ref = {"$ref": f"#/components/schemas/{_schema_name(ep.entity)}"}
        body = ({"type": "object", "properties": {ep.key: ref}} if ep.single else
                {"type": "object", "properties": {ep.key: {"type": "array", "items": ref}}})
        parameters = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in _path_params(ep.pattern)
        ]
        if not ep.single:
            parameters += _QUERY_PARAMETERS
        else:
            parameters.append(_QUERY_PARAMETERS[-1])
        ok = {"description": "OK", "content": {"application/json": {"schema": body}}}
        if not ep.single:
            ok["headers"] = {"X-Total-Count": {"schema": {"type": "integer"}},
                             "Link": {"schema": {"type": "string"}}}
        paths[ep.pattern] = {"get": {
            "operationId": ep.name,
            "parameters": parameters,
            "security": [{"OAuth2CC": sorted(ep.scopes)}],
            "responses": {"200": ok, **errors},
        }}
    public = settings.INTERCHANGE_PUBLIC_URL
    return {
        "openapi": "3.0.3",
        "info": {"title": "Interchange OneRoster 1.2 Rostering", "version": "1.2",
                 "description": "OneRoster 1.2 REST rostering, minimised by the school's "
                                f"approvals. Largest page: {max_limit()} records."},
        "servers": [{"url": public + BASE_PATH}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"OAuth2CC": {"type": "oauth2", "flows": {"clientCredentials": {
                "tokenUrl": f"{public}/oauth/token",
                "scopes": dict(ONEROSTER_SCOPES),
            }}}},
        },
    }


def _path_params(pattern: str) -> list[str]:
    return [part[1:-1] for part in pattern.split("/") if part.startswith("{")]


def openapi_view(request):  # type: ignore[no-untyped-def]
    return JsonResponse(openapi_document())


def connect_view(request):  # type: ignore[no-untyped-def]
    public = settings.INTERCHANGE_PUBLIC_URL
    return render(request, "oneroster_api/connect.html", {
        "token_url": f"{public}/oauth/token",
        "base_url": public + BASE_PATH,
        "openapi_url": f"{public}{BASE_PATH}/openapi.json",
        "max_limit": max_limit(),
        "environment": settings.INTERCHANGE_ENVIRONMENT,
        "scopes": sorted(s for s in ONEROSTER_SCOPES if "roster" in s),
    })
