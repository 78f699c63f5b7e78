"""Request ids, structured logs and request metrics.

Every web request gets a request id (taken from ``X-Request-ID`` when it is a
sane token, otherwise generated). It is put on every log line, returned in the
response, and carried into Celery tasks the request enqueues, so one grep
follows a job from the click to the worker.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from celery import signals
from django.http import HttpRequest, HttpResponse

from portal import metrics

REQUEST_ID_HEADER = "X-Request-ID"
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


def new_request_id() -> str:
    return uuid.uuid4().hex


class RequestIdMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        request_id = incoming if _SAFE_REQUEST_ID.match(incoming) else new_request_id()
        token = request_id_var.set(request_id)
        request.request_id = request_id  # type: ignore[attr-defined]
        try:
            response = self.get_response(request)
        finally:
            request_id_var.reset(token)
        response[REQUEST_ID_HEADER] = request_id
        return response


class MetricsMiddleware:
    """Request latency and errors, labelled by route (never by raw path: unbounded labels)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        route = match.route if match is not None and match.route else "unmatched"
        elapsed = time.perf_counter() - started
        metrics.HTTP_REQUEST_SECONDS.labels(request.method, route).observe(elapsed)
        metrics.HTTP_RESPONSES.labels(request.method, route, str(response.status_code)).inc()
        return response


class RequestIdLogFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        # Django logs 4xx/5xx responses after the middleware has returned (and reset the
        # context variable), passing the request along; its id is the right one.
        request = getattr(record, "request", None)
        record.request_id = getattr(request, "request_id", None) or request_id_var.get()
        return True


_STANDARD_ATTRS = set(vars(logging.LogRecord("x", 0, "x", 0, "x", None, None))) | {
    "message",
    "asctime",
    "request_id",
    "request",  # an HttpRequest object (django.request, django.security); the id says enough
}


class JsonFormatter(logging.Formatter):
    """One JSON object per line; extra= fields are included as keys."""

    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", request_id_var.get()),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


@signals.setup_logging.connect
def _keep_django_logging(**_: object) -> None:
    """Django's LOGGING (JSON lines with request ids) configures the worker as well.

    Any receiver of this signal stops Celery from installing its own handlers and from
    resetting the root level to ``--loglevel``; use INTERCHANGE_LOG_LEVEL instead.
    """


@signals.before_task_publish.connect
def _attach_request_id(headers: dict | None = None, **_: object) -> None:
    if headers is not None:
        headers.setdefault("request_id", request_id_var.get())


_task_tokens: dict[str, contextvars.Token] = {}


@signals.task_prerun.connect
def _adopt_request_id(task_id: str | None = None, task: object = None, **_: object) -> None:
    request = getattr(task, "request", None)
    # A task run eagerly (sandbox, tests) publishes no message, so it keeps the caller's id.
    inherited = request_id_var.get() if getattr(request, "is_eager", False) else None
    request_id = (
        getattr(request, "request_id", None)
        or (inherited if inherited != "-" else None)
        or f"task-{task_id}"
    )
    if task_id:
        _task_tokens[task_id] = request_id_var.set(request_id)
    _task_started[task_id or ""] = time.perf_counter()


_task_started: dict[str, float] = {}


@signals.task_postrun.connect
def _release_request_id(
    task_id: str | None = None, task: object = None, state: str | None = None, **_: object
) -> None:
    started = _task_started.pop(task_id or "", None)
    name = getattr(task, "name", "unknown")
    if started is not None:
        metrics.JOB_SECONDS.labels(name).observe(time.perf_counter() - started)
    if state and state != "SUCCESS":
        metrics.JOB_FAILURES.labels(name).inc()
    token = _task_tokens.pop(task_id or "", None)
    if token is not None:
        request_id_var.reset(token)
