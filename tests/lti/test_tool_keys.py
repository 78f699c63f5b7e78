"""A tool's keys: a pasted key's kid is its thumbprint; a JWKS URL is fetched from a real HTTP
server on loopback, cached, refetched once on an unknown kid; outside the sandbox the fetch
is refused for anything but public https addresses."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from apps.keys.jwk import jwk_thumbprint, rsa_public_jwk
from apps.lti import tool_keys
from apps.lti.models import ToolRegistration
from apps.lti.tool_keys import ToolKeyError, check_jwks_url, public_key_from_pem, tool_public_key


def new_key():  # type: ignore[no-untyped-def]
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwk_of(key, kid=None) -> dict:  # type: ignore[no-untyped-def]
    jwk = rsa_public_jwk(key.public_key())
    return {**jwk, "kid": kid or jwk_thumbprint(jwk), "alg": "RS256", "use": "sig"}


class JwksServer:
    """Serves ``keys`` at /jwks and counts the fetches."""

    def __init__(self) -> None:
        self.keys: list[dict] = []
        self.fetches = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                server.fetches += 1
                body = json.dumps({"keys": server.keys}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:  # type: ignore[no-untyped-def]
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/jwks"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def jwks_server():  # type: ignore[no-untyped-def]
    server = JwksServer()
    yield server
    server.close()


@pytest.fixture(autouse=True)
def _clear_cache():  # type: ignore[no-untyped-def]
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


def test_a_pasted_key_is_known_by_its_rfc7638_thumbprint():
    key = new_key()
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    _, kid = public_key_from_pem(pem)
    assert kid == jwk_thumbprint(rsa_public_jwk(key.public_key()))
    registration = ToolRegistration(public_key_pem=pem, public_key_kid=kid)
    assert tool_public_key(registration, kid).public_numbers() == (
        key.public_key().public_numbers())
    for wrong in ("another-kid", "", None):
        with pytest.raises(ToolKeyError):
            tool_public_key(registration, wrong)


def test_a_small_or_unreadable_key_is_refused():
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()  # noqa: S505
    pem = small.public_bytes(serialization.Encoding.PEM,
                             serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    with pytest.raises(ToolKeyError, match="2048"):
        public_key_from_pem(pem)
    with pytest.raises(ToolKeyError):
        public_key_from_pem("-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----")


def test_the_jwks_is_cached_and_refetched_once_for_an_unknown_kid(jwks_server):
    first, second = new_key(), new_key()
    jwks_server.keys = [jwk_of(first)]
    registration = ToolRegistration(jwks_url=jwks_server.url)

    # fetched once, then served from the cache
    tool_public_key(registration, jwk_of(first)["kid"])
    tool_public_key(registration, jwk_of(first)["kid"])
    assert jwks_server.fetches == 1

    # the tool rotates: an unknown kid triggers one refetch, which finds it
    jwks_server.keys = [jwk_of(first), jwk_of(second)]
    assert tool_public_key(registration, jwk_of(second)["kid"]).public_numbers() == (
        second.public_key().public_numbers())
    assert jwks_server.fetches == 2

    # random kids do not turn into a fetch each
    for attempt in range(5):
        with pytest.raises(ToolKeyError):
            tool_public_key(registration, f"random-{attempt}")
    assert jwks_server.fetches == 2


def test_keys_of_the_wrong_type_or_use_are_ignored(jwks_server):
    key = new_key()
    jwks_server.keys = [{**jwk_of(key), "use": "enc"}]
    with pytest.raises(ToolKeyError):
        tool_public_key(ToolRegistration(jwks_url=jwks_server.url), jwk_of(key)["kid"])


@pytest.mark.parametrize("url", [
    "http://8.8.8.8/jwks",  # not https
    "https://127.0.0.1/jwks",
    "https://localhost/jwks",
    "https://10.1.2.3/jwks",
    "https://192.168.0.10/jwks",
    "https://172.16.5.4/jwks",
    "https://169.254.169.254/latest/meta-data",
    "https://[::1]/jwks",
    "https://[::ffff:127.0.0.1]/jwks",
    "https://[fe80::1]/jwks",
    "https://0.0.0.0/jwks",
    "https://224.0.0.1/jwks",
    "https://no-such-host.invalid/jwks",
])
def test_outside_the_sandbox_only_public_https_is_fetched(settings, url):
    settings.INTERCHANGE_ENVIRONMENT = "staging"
    with pytest.raises(ToolKeyError):
        check_jwks_url(url)
    with pytest.raises(ToolKeyError):
        tool_keys.fetch_jwks(url)


def test_a_public_https_address_passes_the_guard(settings):
    settings.INTERCHANGE_ENVIRONMENT = "production"
    check_jwks_url("https://8.8.8.8/jwks")


def test_the_guard_refuses_the_loopback_server_a_sandbox_would_fetch(settings, jwks_server):
    key = new_key()
    jwks_server.keys = [jwk_of(key)]
    settings.INTERCHANGE_ENVIRONMENT = "production"
    with pytest.raises(ToolKeyError):
        tool_public_key(ToolRegistration(jwks_url=jwks_server.url), jwk_of(key)["kid"])
    assert jwks_server.fetches == 0
