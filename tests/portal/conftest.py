"""Helpers for tests that start the portal in a fresh process with its own environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Variables a developer's shell may carry that would change what the child process sees.
_SCRUBBED_PREFIXES = ("INTERCHANGE_", "DJANGO_", "PROMETHEUS_")


@pytest.fixture
def run_portal(tmp_path):  # type: ignore[no-untyped-def]
    """Run ``python <args>`` in the project root with a scrubbed environment plus ``env``."""

    def run(
        args: list[str], env: dict[str, str], timeout: float = 60
    ) -> subprocess.CompletedProcess:
        child_env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(_SCRUBBED_PREFIXES)
        }
        child_env.setdefault("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
        child_env["DJANGO_SETTINGS_MODULE"] = "portal.settings"
        child_env["INTERCHANGE_VAR_DIR"] = str(tmp_path / "var")
        child_env.update(env)
        return subprocess.run(
            [sys.executable, *args],
            cwd=ROOT,
            env=child_env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run
