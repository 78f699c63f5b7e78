"""The signed download link: the only HTTP surface of deliveries.

A token is a random capability (only its hash is stored). Unknown tokens answer 404;
known but expired, used, revoked or purged ones answer 410 with the same body whatever the
reason, so a probe learns nothing beyond "this link no longer works". Every request
leaves an access record; a served download also names the run it belongs to.
"""

from __future__ import annotations

import time

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.views.decorators.http import require_GET

from apps.audit.models import Channel
from apps.audit.services import access_record
from apps.delivery import services

ENDPOINT = "/delivery/download/{token}"
MSG_NOT_FOUND = "Not found."
MSG_GONE = "This download link is no longer valid. Ask the school for a new one."
CHUNK = 64 * 1024


@require_GET
def download(request: HttpRequest, token: str) -> HttpResponse:
    started = time.perf_counter()
    claim = services.download_link_claim(token=token)

    def record(status: int, records: int = 0) -> None:
        access_record(
            integration_id=claim.link.destination.integration_id if claim.link else None,
            channel=Channel.ONEROSTER_CSV, endpoint=ENDPOINT, status_code=status,
            records=records, duration_ms=int((time.perf_counter() - started) * 1000),
        )

    if claim.outcome == services.LINK_UNKNOWN:
        record(404)
        return HttpResponse(MSG_NOT_FOUND, status=404, content_type="text/plain")
    if claim.outcome == services.LINK_GONE:
        record(410)
        return HttpResponse(MSG_GONE, status=410, content_type="text/plain")
    link = claim.link
    assert link is not None
    bundle = link.bundle
    reader = services.bundle_open(bundle)

    def chunks():  # type: ignore[no-untyped-def]
        with reader:
            while block := reader.read(CHUNK):
                yield block

    rows = sum((bundle.counts or {}).get("rows", {}).values())
    record(200, rows)
    response = StreamingHttpResponse(chunks(), content_type="application/zip")
    response["Content-Disposition"] = (
        f'attachment; filename="oneroster_{bundle.mode}_v{bundle.version_to}.zip"'
    )
    response["Content-Length"] = str(bundle.size_bytes)
    response["Cache-Control"] = "no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response
