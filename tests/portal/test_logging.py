"""Structured logs: one JSON object per line, each carrying the request id."""

from __future__ import annotations

import json

LOG_A_REQUEST = """
import django
django.setup()
from django.test import Client
response = Client().get("/no-such-page", HTTP_HOST="127.0.0.1", HTTP_X_REQUEST_ID="%s")
print(response.status_code, response["X-Request-ID"])
"""
REQUEST_ID = "json-log-request-0001"


def test_with_json_logging_a_request_logs_json_lines_carrying_its_request_id(run_portal):
    result = run_portal(["-c", LOG_A_REQUEST % REQUEST_ID], {"INTERCHANGE_LOG_FORMAT": "json"})

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["404", REQUEST_ID]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines, "the 404 should have been logged"
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    [not_found] = [r for r in records if r["logger"] == "django.request"]
    assert not_found["request_id"] == REQUEST_ID
    assert not_found["level"] == "warning"
    assert not_found["message"] == "Not Found: /no-such-page"
    assert {"time", "status_code"} <= not_found.keys()


def test_console_logging_is_the_sandbox_default_and_also_names_the_request(run_portal):
    result = run_portal(["-c", LOG_A_REQUEST % REQUEST_ID], {})

    assert result.returncode == 0, result.stderr
    assert f"WARNING [{REQUEST_ID}] django.request: Not Found: /no-such-page" in result.stderr
