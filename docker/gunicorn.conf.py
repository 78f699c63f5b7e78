"""gunicorn for the web container: sync workers, JSON logs, Prometheus multiprocess metrics.

Everything tunable comes from the environment:
    GUNICORN_BIND                  default 0.0.0.0:8000
    GUNICORN_WORKERS               default 2 x CPUs + 1, at most 8 (each holds a DB connection)
    GUNICORN_TIMEOUT               seconds a request may take before its worker is replaced (60)
    GUNICORN_MAX_REQUESTS          requests a worker serves before it is replaced (25000)
    GUNICORN_FORWARDED_ALLOW_IPS   front ends trusted for X-Forwarded-* (default *: the port is
                                   published only to the reverse proxy; Django trusts
                                   X-Forwarded-Proto through SECURE_PROXY_SSL_HEADER anyway)
    PROMETHEUS_MULTIPROC_DIR       default /tmp/interchange-prometheus, emptied at start
    INTERCHANGE_LOG_FORMAT         json (default) | console
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

from gunicorn import glogging

# --- workers ---------------------------------------------------------------------------------
bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")  # noqa: S104 - inside the container
worker_class = "sync"  # DESIGN: sync workers with persistent DB connections
workers = int(os.environ.get("GUNICORN_WORKERS", min(2 * (os.cpu_count() or 1) + 1, 8)))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = 30
keepalive = 5
# Recycle workers now and then so a slow leak never becomes an outage, but not often: a new
# worker costs over a second of CPU to import the portal and warm its caches, and at a few
# hundred vendor requests a second a recycle every 2,000 requests took ~8% of two cores.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "25000"))
max_requests_jitter = max_requests // 10
# Each worker imports the app itself: no DB connection or metrics state shared across fork.
preload_app = False
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "*")
proxy_allow_ips = forwarded_allow_ips
if Path("/dev/shm").is_dir():  # noqa: S108 - heartbeat files on tmpfs, not on a slow disk
    worker_tmp_dir = "/dev/shm"  # noqa: S108
proc_name = "interchange-web"

# --- metrics ---------------------------------------------------------------------------------
# Set before any worker imports prometheus_client, so every worker writes its samples here and
# /metrics (portal.metrics.exposition) sums them.
PROMETHEUS_DIR = Path(
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", "/tmp/interchange-prometheus")  # noqa: S108
)
# It must exist whenever the application is imported (``--check-config`` and ``preload_app``
# import it without ``on_starting``): a gauge without labels opens its file at import.
PROMETHEUS_DIR.mkdir(parents=True, exist_ok=True, mode=0o700)


def on_starting(server) -> None:  # type: ignore[no-untyped-def]
    """Start from an empty directory: files left by a previous run would be counted again."""
    shutil.rmtree(PROMETHEUS_DIR, ignore_errors=True)
    PROMETHEUS_DIR.mkdir(parents=True, mode=0o700)


# Imported once here, after the directory is in the environment: child_exit runs inside the
# arbiter's SIGCHLD handler, and an import there can be re-entered by the next signal
# (seen as "partially initialized module" when two workers exit together).
from prometheus_client import multiprocess  # noqa: E402


def child_exit(server, worker) -> None:  # type: ignore[no-untyped-def]
    """A worker that died or was recycled stops counting in live gauges."""
    multiprocess.mark_process_dead(worker.pid)


# --- logs ------------------------------------------------------------------------------------
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("INTERCHANGE_LOG_LEVEL", "info").lower()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class _JsonLineFormatter(logging.Formatter):
    """gunicorn's own messages in the same shape as portal.observability.JsonFormatter."""

    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "time": _now(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": "-",
        }
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload)


class JsonLogger(glogging.Logger):
    """One JSON object per line. The access line carries the response's X-Request-ID, so it
    joins up with the application's and the worker's lines for the same request. The query
    string is left out on purpose: it can carry tokens and personal data."""

    def setup(self, cfg) -> None:  # type: ignore[no-untyped-def]
        super().setup(cfg)
        for handler in self.error_log.handlers:
            handler.setFormatter(_JsonLineFormatter())
        for handler in self.access_log.handlers:
            handler.setFormatter(logging.Formatter("%(message)s"))

    def access(self, resp, req, environ, request_time) -> None:  # type: ignore[no-untyped-def]
        if not self.cfg.accesslog:
            return
        status = resp.status.split(None, 1)[0] if isinstance(resp.status, str) else resp.status
        headers = dict((name.lower(), value) for name, value in resp.headers)
        line = {
            "time": _now(),
            "level": "info",
            "logger": "gunicorn.access",
            "message": f"{environ.get('REQUEST_METHOD')} {environ.get('PATH_INFO')} {status}",
            "request_id": headers.get("x-request-id", "-"),
            "method": environ.get("REQUEST_METHOD"),
            "path": environ.get("PATH_INFO"),
            "status": int(status),
            "bytes": getattr(resp, "sent", None),
            "duration_ms": round(request_time.total_seconds() * 1000, 1),
            "remote_addr": environ.get("REMOTE_ADDR"),
            "forwarded_for": environ.get("HTTP_X_FORWARDED_FOR"),
            "user_agent": environ.get("HTTP_USER_AGENT"),
        }
        try:
            self.access_log.info(json.dumps(line))
        except Exception:  # noqa: BLE001 - a log line must never fail a request
            self.exception("access log failed")


if os.environ.get("INTERCHANGE_LOG_FORMAT", "json") == "json":
    logger_class = JsonLogger
else:
    access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(M)sms request_id=%({x-request-id}o)s'
