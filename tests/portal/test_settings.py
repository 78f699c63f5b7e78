"""Production settings are safe by construction, and unsafe ones stop the portal at start-up."""

from __future__ import annotations

import secrets

import pytest

from apps.keys.master import generate_key
from portal.settings import INSECURE_SECRET_KEY


def production_env(**overrides: str) -> dict[str, str]:
    env = {
        "INTERCHANGE_ENVIRONMENT": "production",
        "DJANGO_SECRET_KEY": secrets.token_hex(32),  # 64 characters
        "INTERCHANGE_MASTER_KEY": generate_key(),
        "INTERCHANGE_PUBLIC_URL": "https://interchange.example.org",
        "DATABASE_URL": "postgresql://interchange@db.internal:5432/interchange",
    }
    env.update(overrides)
    return {key: value for key, value in env.items() if value is not None}


def test_check_deploy_is_clean_under_production_settings(run_portal):
    result = run_portal(["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                        production_env())

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.mark.parametrize("environment", ["staging", "production"])
@pytest.mark.parametrize(
    ("unsafe", "reason"),
    [
        ({"DJANGO_DEBUG": "true"}, "DJANGO_DEBUG is on"),
        ({"DJANGO_SECRET_KEY": ""}, "DJANGO_SECRET_KEY"),
        ({"DJANGO_SECRET_KEY": INSECURE_SECRET_KEY}, "DJANGO_SECRET_KEY"),
        ({"INTERCHANGE_MASTER_KEY": ""}, "INTERCHANGE_MASTER_KEY"),
        ({"INTERCHANGE_MASTER_KEY": "not-a-key"}, "INTERCHANGE_MASTER_KEY is not URL-safe base64"),
        ({"INTERCHANGE_PUBLIC_URL": "http://interchange.example.org"}, "must be https://"),
    ],
    ids=["debug", "no-secret-key", "default-secret-key", "no-master-key", "bad-master-key",
         "plain-http"],
)
def test_staging_and_production_refuse_to_start_with_unsafe_settings(
    run_portal, environment, unsafe, reason
):
    env = production_env(INTERCHANGE_ENVIRONMENT=environment, **unsafe)

    result = run_portal(["manage.py", "check"], env)

    assert result.returncode != 0
    assert f"Interchange refuses to start in {environment}" in result.stderr
    assert reason in result.stderr


def test_the_sandbox_starts_without_any_secrets(run_portal, tmp_path):
    result = run_portal(["manage.py", "check"], {"INTERCHANGE_ENVIRONMENT": "sandbox"})

    assert result.returncode == 0, result.stderr
    assert (tmp_path / "var" / "master.key").exists()


def test_an_unknown_environment_is_refused(run_portal):
    result = run_portal(["manage.py", "check"], production_env(INTERCHANGE_ENVIRONMENT="prod"))

    assert result.returncode != 0
    assert "INTERCHANGE_ENVIRONMENT must be one of sandbox, staging, production" in result.stderr
    assert "'prod'" in result.stderr


@pytest.mark.parametrize("url", ["sqlite:///interchange.db", "mysql://u:p@db/interchange"])
def test_a_database_other_than_postgresql_is_refused(run_portal, url):
    result = run_portal(["manage.py", "check"], production_env(DATABASE_URL=url))

    assert result.returncode != 0
    assert "DATABASE_URL must be a PostgreSQL URL" in result.stderr
