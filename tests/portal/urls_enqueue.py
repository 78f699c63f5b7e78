"""Test URLconf: the portal's routes plus one view that enqueues a job, as real views will."""

from django.http import HttpRequest, JsonResponse
from django.urls import path

from portal.tasks import heartbeat
from portal.urls import urlpatterns as portal_urlpatterns


def enqueue_heartbeat(request: HttpRequest) -> JsonResponse:
    heartbeat.delay()
    return JsonResponse({"enqueued": "ops.heartbeat"})


urlpatterns = [path("test/enqueue-heartbeat", enqueue_heartbeat), *portal_urlpatterns]
