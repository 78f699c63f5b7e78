"""A real, independent LTI 1.3 tool (pylti1p3 from PyPI) and a browser, for tests that meet
the platform from the outside, over HTTP, against ``live_server``.

pylti1p3 is framework-neutral: it needs a request, a session, cookies and a redirect. Here the
tool's "server" is this object: its session and cookies are dicts, its pages are method
calls, and the browser (a ``requests.Session`` signed in to the portal) carries every hand-off
between the two, exactly as a user's browser would.

Known quirks of pylti1p3 2.0 (so tests check these themselves, not the library): it does
not verify ``aud`` (``verify_aud`` is off) and its nonce check only asks whether the nonce was
ever issued, never consuming it.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pylti1p3.cookie import CookieService
from pylti1p3.deep_link_resource import DeepLinkResource
from pylti1p3.message_launch import MessageLaunch
from pylti1p3.oidc_login import OIDCLogin
from pylti1p3.redirect import Redirect
from pylti1p3.request import Request
from pylti1p3.session import SessionService
from pylti1p3.tool_config import ToolConfDict

TOOL_ORIGIN = "https://tool.example"
LOGIN_URL = TOOL_ORIGIN + "/lti/login"
REDIRECT_URI = TOOL_ORIGIN + "/lti/launch"
TARGET_LINK_URI = TOOL_ORIGIN + "/lti/launch"

_FORM = re.compile(r'<form id="lti-autosubmit" method="post" action="([^"]*)">(.*?)</form>', re.S)
_INPUT = re.compile(r'<input type="hidden" name="([^"]*)" value="([^"]*)">')
_CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]*)"')


def rsa_key_pair() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    return private, public


@dataclass
class Form:
    """An auto-submitting hand-off page, as a browser would read it."""

    status: int
    action: str = ""
    fields: dict[str, str] = field(default_factory=dict)
    text: str = ""

    @classmethod
    def parse(cls, response: Any) -> Form:
        text = response.text if hasattr(response, "text") else response.content.decode()
        match = _FORM.search(text)
        if match is None:
            return cls(status=response.status_code, text=text)
        fields = {html.unescape(k): html.unescape(v) for k, v in _INPUT.findall(match.group(2))}
        return cls(status=response.status_code, action=html.unescape(match.group(1)),
                   fields=fields, text=text)


class Browser:
    """A user's browser: cookies for the portal, and it follows the hand-off forms."""

    def __init__(self, base_url: str) -> None:
        self.base = base_url
        self.http = requests.Session()

    def login(self, username: str, password: str) -> None:
        page = self.http.get(self.base + "/launch/login/")
        token = _CSRF.search(page.text).group(1)  # type: ignore[union-attr]
        response = self.http.post(self.base + "/launch/login/", data={
            "csrfmiddlewaretoken": token, "username": username, "password": password,
            "next": "/launch/",
        })
        assert response.status_code == 200 and "Your classes" in response.text, response.text

    def launch_page(self) -> requests.Response:
        return self.http.get(self.base + "/launch/")

    def start(self, client_id: str, class_id: str, **extra: str) -> Form:
        page = self.launch_page()
        token = _CSRF.search(page.text)
        data = {"csrfmiddlewaretoken": token.group(1) if token else "", "client_id": client_id,
                "class": class_id, **extra}
        return Form.parse(self.http.post(self.base + "/launch/start", data=data))

    def follow(self, url: str) -> Form:
        """Follow a redirect the tool answered with (to the platform's /lti/auth)."""
        return Form.parse(self.http.get(url, allow_redirects=False))

    def post(self, url: str, data: dict[str, str]) -> requests.Response:
        return self.http.post(url, data=data)


class ClientBrowser(Browser):
    """The same browser over Django's test client (in process, no live server): for the
    many negative cases, where the tool never needs to fetch the platform's keys."""

    def __init__(self, username: str, password: str) -> None:
        from django.test import Client

        self.base = ""
        self.client = Client()
        response = self.client.post("/launch/login/", {"username": username,
                                                       "password": password,
                                                       "next": "/launch/"}, follow=True)
        assert b"Your classes" in response.content, response.content

    def launch_page(self) -> Any:
        return self.client.get("/launch/")

    def start(self, client_id: str, class_id: str, **extra: str) -> Form:
        return Form.parse(self.client.post("/launch/start", {"client_id": client_id,
                                                             "class": class_id, **extra}))

    def follow(self, url: str) -> Form:
        parts = urlsplit(url)
        return Form.parse(self.client.get(parts.path, parse_qs(parts.query)))

    def auth(self, params: dict[str, str]) -> Form:
        return Form.parse(self.client.get("/lti/auth", params))

    def post(self, url: str, data: dict[str, str]) -> Any:
        return self.client.post(urlsplit(url).path, data)


# --- pylti1p3 adapters: the tool's request, cookies and redirects -------------------------------


class _ToolRequest(Request):
    def __init__(self, params: dict[str, str], session: dict[str, Any]) -> None:
        self._params = params
        self._session = session

    @property
    def session(self) -> dict[str, Any]:
        return self._session

    def is_secure(self) -> bool:
        return True

    def get_param(self, key: str) -> str:
        return self._params.get(key)  # type: ignore[return-value]


class _ToolCookies(CookieService):
    def __init__(self, jar: dict[str, Any]) -> None:
        self._jar = jar

    def get_cookie(self, name: str) -> str | None:
        return self._jar.get(f"{self._cookie_prefix}-{name}")

    def set_cookie(self, name: str, value: Any, exp: int | None = 3600) -> None:
        self._jar[f"{self._cookie_prefix}-{name}"] = value


class _ToolRedirect(Redirect[str]):
    def __init__(self, location: str) -> None:
        self._location = location

    def do_redirect(self) -> str:
        return self._location

    def do_js_redirect(self) -> str:
        return self._location

    def set_redirect_url(self, location: str) -> None:
        self._location = location

    def get_redirect_url(self) -> str:
        return self._location


class _ToolOIDCLogin(OIDCLogin):
    def get_redirect(self, url: str) -> _ToolRedirect:
        return _ToolRedirect(url)


class _ToolMessageLaunch(MessageLaunch):
    def _get_request_param(self, key: str) -> str:
        return self._request.get_param(key)


class Tool:
    """The vendor's tool, built on pylti1p3, registered with the platform as ``client_id``."""

    def __init__(self, *, issuer: str, client_id: str, deployment_ids: list[str],
                 private_pem: str, public_pem: str, key_set: dict | None = None) -> None:
        self.issuer = issuer
        self.client_id = client_id
        self.private_pem = private_pem
        self.public_pem = public_pem
        entry: dict[str, Any] = {
            "default": True,
            "client_id": client_id,
            "auth_login_url": issuer + "/lti/auth",
            "auth_token_url": issuer + "/lti/token",
            "deployment_ids": deployment_ids,
        }
        if key_set is not None:
            entry["key_set"] = key_set
        else:
            entry["key_set_url"] = issuer + "/lti/jwks"
        self.config = ToolConfDict({issuer: [entry]})
        self.config.set_private_key(issuer, private_pem, client_id=client_id)
        self.config.set_public_key(issuer, public_pem, client_id=client_id)
        self.session: dict[str, Any] = {}
        self.cookies: dict[str, Any] = {}

    def oidc_login(self, form: Form) -> str:
        """The tool's login initiation endpoint: returns the URL it redirects the browser to."""
        request = _ToolRequest(form.fields, self.session)
        login = _ToolOIDCLogin(request, self.config, SessionService(request),
                               _ToolCookies(self.cookies))
        return login.redirect(REDIRECT_URI)

    def launch(self, form: Form) -> _ToolMessageLaunch:
        """The tool's launch endpoint: validates the posted id_token (raises on failure)."""
        request = _ToolRequest(form.fields, self.session)
        message = _ToolMessageLaunch(request, self.config, SessionService(request),
                                     _ToolCookies(self.cookies))
        message.validate()
        return message

    def deep_link_response(self, message: _ToolMessageLaunch,
                           resources: list[DeepLinkResource]) -> tuple[str, str]:
        """(return URL, signed JWT) of a Deep Linking response to ``message``."""
        deep_link = message.get_deep_link()
        settings = message.get_launch_data()[
            "https://purl.imsglobal.org/spec/lti-dl/claim/deep_linking_settings"
        ]
        return settings["deep_link_return_url"], deep_link.get_response_jwt(resources)

    def sign(self, payload: dict[str, Any], *, kid: str | None = None,
             private_pem: str | None = None) -> str:
        """A JWT signed by this tool (or another key), for hand-made negative cases."""
        headers = {"kid": kid} if kid is not None else {}
        return jwt.encode(payload, private_pem or self.private_pem, algorithm="RS256",
                          headers=headers)

    def nonce_issued(self, auth_url: str) -> str:
        return parse_qs(urlsplit(auth_url).query)["nonce"][0]


def auth_params(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
