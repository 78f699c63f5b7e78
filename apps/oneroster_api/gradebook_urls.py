"""Routes of the gradebook service: each path once, with the operations it answers
(GET from the read table, PUT and DELETE on an object's path, POST from the post table),
its OpenAPI document, and an imsx 404 for anything else under the base."""

from __future__ import annotations

from django.urls import URLPattern, include, path, re_path

from apps.oneroster_api import gradebook as G
from apps.oneroster_api import gradebook_docs
from apps.oneroster_api.errors import MSG_UNKNOWN_ENDPOINT, UNKNOWN_OBJECT, status_response
from apps.oneroster_api.gradebook_views import GradebookApi

_base = G.BASE_PATH.lstrip("/")


def _unknown(request, *args, **kwargs):  # type: ignore[no-untyped-def]
    return status_response(UNKNOWN_OBJECT, MSG_UNKNOWN_ENDPOINT)


def _routes() -> list[URLPattern]:
    routes: dict[str, dict] = {}
    for ep in G.READ_ENDPOINTS:
        route = routes.setdefault(ep.route, {"pattern": ep.pattern, "name": ep.name})
        route["endpoint"] = ep
        if ep.single:
            route["write_entity"] = ep.entity
    for post in G.POST_ENDPOINTS:
        route = routes.setdefault(post.route, {"pattern": post.pattern, "name": post.name})
        route["post"] = post
    return [
        path(route, GradebookApi.as_view(
            endpoint=spec.get("endpoint"), write_entity=spec.get("write_entity"),
            post_endpoint=spec.get("post"), pattern=spec["pattern"],
        ), name=f"gradebook-{spec['name']}")
        for route, spec in routes.items()
    ]


# Under one prefix: a request matches it once, then only the gradebook's own routes.
urlpatterns = [
    path(f"{_base}/", include([
        path("openapi.json", gradebook_docs.openapi_view, name="gradebook-openapi"),
        *_routes(),
        re_path(r"^.*$", _unknown),
    ])),
]
