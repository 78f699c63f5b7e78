"""``imsx_StatusInfo`` error bodies, exactly as the OneRoster 1.2 REST binding shapes them.

The binding's OpenAPI answers every failure with an ``imsx_StatusInfoDType`` object at the
top level of the body (not wrapped), with one code minor field named ``TargetEndSystem``.
Every refusal the provider makes goes through :class:`ApiError`, so a client always gets
the documented status, code minor and body, never an HTML page or a bare 500.
"""

from __future__ import annotations

import json

from django.http import HttpResponse

# Code minor values of the binding.
INVALID_FILTER_FIELD = "invalid_filter_field"
INVALID_SELECTION_FIELD = "invalid_selection_field"
INVALID_DATA = "invaliddata"
UNAUTHORISED = "unauthorisedrequest"
FORBIDDEN = "forbidden"
SERVER_BUSY = "server_busy"
UNKNOWN_OBJECT = "unknownobject"
INTERNAL_SERVER_ERROR = "internal_server_error"

HTTP_STATUS = {
    INVALID_FILTER_FIELD: 400,
    INVALID_SELECTION_FIELD: 400,
    INVALID_DATA: 400,
    UNAUTHORISED: 401,
    FORBIDDEN: 403,
    UNKNOWN_OBJECT: 404,
    SERVER_BUSY: 429,
    INTERNAL_SERVER_ERROR: 500,
}

# Messages (tests assert against them).
MSG_FILTER_SYNTAX = "The filter is not valid: {detail}."
MSG_FILTER_FIELD = "The filter names a field that does not exist for this client: {field}."
MSG_FILTER_VALUE = "The filter value for {field} is not valid: {detail}."
MSG_FILTER_TOO_LONG = "The filter is too long (at most {limit} characters)."
MSG_FILTER_TOO_MANY = "The filter has too many predicates (at most {limit})."
MSG_FILTER_VALUE_TOO_LONG = "A filter value is too long (at most {limit} characters)."
MSG_SELECTION_FIELD = (
    "The fields parameter names a field that does not exist for this client: {field}."
)
MSG_SORT_FIELD = "The sort field does not exist for this client: {field}."
MSG_ORDER_BY = "orderBy must be asc or desc."
MSG_LIMIT = "limit must be an integer from 1 to {max}."
MSG_OFFSET = "offset must be an integer of 0 or more."
MSG_DUPLICATE_PARAMETER = "The {name} parameter may be given only once."
MSG_UNAUTHORISED = "The request has no valid access token."
MSG_FORBIDDEN_SCOPE = "The access token does not carry a scope this endpoint accepts: {scopes}."
MSG_FORBIDDEN_SERVICE = "This client is not approved for OneRoster rostering."
MSG_UNKNOWN_OBJECT = "There is no {type} with sourcedId {sourced_id} for this client."
MSG_UNKNOWN_ENDPOINT = "There is no such OneRoster endpoint."
MSG_SERVER_BUSY = "Too many requests; retry after {seconds} seconds."
MSG_INTERNAL = "The request could not be completed."
MSG_METHOD = "Only GET is supported on this endpoint."


class ApiError(Exception):
    """A refusal that becomes an ``imsx_StatusInfo`` response."""

    def __init__(
        self, code_minor: str, description: str, *, status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(description)
        self.code_minor = code_minor
        self.description = description
        self.status = status or HTTP_STATUS[code_minor]
        self.headers = headers or {}

    def response(self) -> HttpResponse:
        return status_response(
            self.code_minor, self.description, status=self.status, headers=self.headers
        )


def status_info(code_minor: str, description: str) -> dict:
    return {
        "imsx_codeMajor": "failure",
        "imsx_severity": "error",
        "imsx_description": description,
        "imsx_CodeMinor": {
            "imsx_codeMinorField": [
                {"imsx_codeMinorFieldName": "TargetEndSystem",
                 "imsx_codeMinorFieldValue": code_minor}
            ]
        },
    }


def status_response(
    code_minor: str, description: str, *, status: int | None = None,
    headers: dict[str, str] | None = None,
) -> HttpResponse:
    response = HttpResponse(
        json.dumps(status_info(code_minor, description)),
        status=status or HTTP_STATUS[code_minor],
        content_type="application/json",
    )
    for name, value in (headers or {}).items():
        response[name] = value
    return response
