"""docker/gunicorn.conf.py: the web server as the container runs it, on a loopback port."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GUNICORN = [sys.executable, "-m", "gunicorn", "--config", "docker/gunicorn.conf.py", "portal.wsgi"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310 - loopback
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return response.status, response.read()


@pytest.fixture
def gunicorn_env(tmp_path):  # type: ignore[no-untyped-def]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INTERCHANGE_", "PROMETHEUS_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="portal.settings",
        INTERCHANGE_VAR_DIR=str(tmp_path / "var"),
        INTERCHANGE_LOG_FORMAT="json",
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prometheus"),
        GUNICORN_BIND=f"127.0.0.1:{free_port()}",
        GUNICORN_WORKERS="2",
    )
    env.setdefault("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    return env


def test_the_configuration_loads_the_application(gunicorn_env):
    result = subprocess.run([*GUNICORN[:-1], "--check-config", GUNICORN[-1]], cwd=ROOT,
                            env=gunicorn_env, capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stderr


def test_two_workers_log_json_access_lines_and_share_one_metrics_view(gunicorn_env, tmp_path):
    stale = tmp_path / "prometheus" / "counter_999999.db"
    stale.parent.mkdir()
    stale.write_bytes(b"left over by a previous run")
    base = f"http://{gunicorn_env['GUNICORN_BIND']}"
    server = subprocess.Popen(GUNICORN, cwd=ROOT, env=gunicorn_env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                get(f"{base}/healthz")
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.2)
        assert not stale.exists()  # emptied at start, so nothing is counted twice

        for n in range(10):
            request_id = {"X-Request-ID": f"gunicorn-test-{n:04d}"}
            get(f"{base}/healthz?token=must-not-be-logged", request_id)
        status, body = get(f"{base}/metrics")
    finally:
        server.send_signal(signal.SIGTERM)
        stdout, stderr = server.communicate(timeout=30)

    assert status == 200
    text = body.decode()
    # one from the readiness poll at least, plus the ten, whichever worker served them
    [count] = [line for line in text.splitlines()
               if line.startswith('interchange_http_responses_total{method="GET",route="healthz"')]
    assert float(count.rsplit(" ", 1)[1]) >= 11

    access = [json.loads(line) for line in stdout.splitlines()]
    ours = [line for line in access if line["request_id"].startswith("gunicorn-test-")]
    assert len(ours) == 10
    assert ours[0]["path"] == "/healthz" and ours[0]["status"] == 200
    assert "must-not-be-logged" not in stdout
    for line in stderr.splitlines():
        try:
            assert json.loads(line)["level"]  # the server's own lines are JSON too
        except ValueError:
            raise AssertionError(f"not a JSON log line in gunicorn's stderr:\n{stderr}") from None
