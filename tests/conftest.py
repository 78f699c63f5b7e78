"""Shared fixtures: real services, or a loud skip (a failure in CI, where they are required)."""

from __future__ import annotations

import os
import shutil
import threading
import time

import pytest
from django.conf import settings

SERVICES_REQUIRED = os.environ.get("INTERCHANGE_TEST_SERVICES") == "required"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
_missing_services: list[str] = []


def require_service(name: str, why: str) -> None:
    """Fail in CI, skip (and remember, for the summary line) elsewhere."""
    message = f"{name} unavailable: {why}"
    if SERVICES_REQUIRED:
        pytest.fail(f"{message} (INTERCHANGE_TEST_SERVICES=required)", pytrace=False)
    _missing_services.append(name)
    pytest.skip(message)


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    if _missing_services:
        counts = {name: _missing_services.count(name) for name in sorted(set(_missing_services))}
        summary = ", ".join(f"{name}: {count}" for name, count in counts.items())
        terminalreporter.write_line(
            f"!!! SKIPPED tests that need real services ({summary}). "
            "Set REDIS_URL / install chromium, or run .ci/run, to run them. !!!",
            red=True,
            bold=True,
        )


@pytest.fixture(autouse=True)
def _celery_eager_by_default(request):  # type: ignore[no-untyped-def]
    """Tasks run in process unless a test asks for a real worker."""
    from portal.celery import app

    eager = request.node.get_closest_marker("worker") is None
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = eager
    yield
    app.conf.task_always_eager = previous


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):  # type: ignore[no-untyped-def]
    """Production hashing is deliberately slow; tests need not be."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _isolated_var_dir(settings, tmp_path):  # type: ignore[no-untyped-def]
    """Files a test writes (staging, bundles) go to its own folder."""
    settings.INTERCHANGE_STAGING_DIR = tmp_path / "staging"
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def redis_url() -> str:
    url = settings.REDIS_URL
    if not url:
        require_service("redis", "REDIS_URL is not set")
    import redis

    try:
        redis.Redis.from_url(url, socket_timeout=2).ping()
    except redis.RedisError as exc:
        require_service("redis", f"{url} does not answer ({exc})")
    return url


@pytest.fixture
def chromium_path() -> str:
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        require_service("browser", f"{CHROMIUM} is not installed")
    return CHROMIUM


@pytest.fixture
def browser(chromium_path):  # type: ignore[no-untyped-def]
    from playwright.sync_api import sync_playwright

    # Playwright runs its own event loop; Django's async-unsafe guard must not trip over it.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()
        # The connections the browser tests opened, while Playwright's event loop ran on
        # this thread, are not the ones Django finds once it has stopped (its connections
        # live in asgiref's Local): closed here, or the test database could not be dropped
        # at the end of the run ("is being accessed by other users").
        from django.db import connections

        connections.close_all()


@pytest.fixture
def staff_user_factory(db):  # type: ignore[no-untyped-def]
    from tests.accounts.factories import StaffUserFactory

    return StaffUserFactory


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):  # type: ignore[no-untyped-def]
    """Once the test database exists: the audit log refuses TRUNCATE, but Django's flush
    between transactional tests needs it (in the throwaway test database only)."""
    from apps.audit.testing import allow_truncate_in_test_database

    with django_db_blocker.unblock():
        allow_truncate_in_test_database()


@pytest.fixture
def fresh_cache():  # type: ignore[no-untyped-def]
    """Counts, rate windows and key caches live in the cache; tests write rows directly."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def fresh_master_key(settings):  # type: ignore[no-untyped-def]
    """A master key of the test's own, so nothing depends on the sandbox key file."""
    from apps.keys.master import generate_key

    settings.INTERCHANGE_MASTER_KEY = generate_key()
    settings.INTERCHANGE_MASTER_KEY_PREVIOUS = None
    return settings.INTERCHANGE_MASTER_KEY


@pytest.fixture
def celery_worker(redis_url):  # type: ignore[no-untyped-def]
    """A real worker thread consuming from Redis (no result backend: the ping check needs one)."""
    from celery.contrib.testing.worker import start_worker
    from celery.signals import task_postrun
    from django.db import connections

    from portal.celery import app

    def close_connections(**_: object) -> None:
        # The worker's thread keeps its database connection between tasks (CONN_MAX_AGE),
        # and a thread's connection outlives the thread: closed after each task, none is
        # left open once the worker stops.
        if threading.current_thread() is not threading.main_thread():
            connections.close_all()

    task_postrun.connect(close_connections, weak=False)
    try:
        with start_worker(app, pool="solo", perform_ping_check=False,
                          shutdown_timeout=10) as worker:
            yield worker
    finally:
        task_postrun.disconnect(close_connections)


def wait_for(predicate, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    """Poll until ``predicate()`` is truthy (a worker's effect showing up) and return it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for the worker")


def sign_in(browser, live_server, username: str):  # type: ignore[no-untyped-def]
    """A staff member signed in to the admin in a fresh browser context; returns the page."""
    from tests.accounts.factories import DEFAULT_PASSWORD

    page = browser.new_context(viewport={"width": 1360, "height": 900}).new_page()
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", DEFAULT_PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/")
    return page
