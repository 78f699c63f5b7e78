"""The browser's middleware, stepping aside for vendors' machine-to-machine endpoints.

Vendors' systems call the hub many times a second (a score per request, a roster page per
request) with bearer tokens, signed client assertions or pull links: never cookies, forms or
logins. For those requests sessions, cookie authentication and MFA, and flash messages do
nothing but cost time: about half a millisecond of CPU per request under gunicorn, a
tenth of a gradebook write. Each class here is Django's (or django-otp's) own middleware,
unchanged for every other path, that passes a request under
``settings.API_PATH_PREFIXES`` straight on.

What stays for every request: the request id, metrics, the security headers (HSTS,
nosniff, referrer policy, frame options, CSP), CSRF (vendors' views are exempt: they are
not authorised by cookies), static files, history attribution and the login lockout. On an
API path ``request.user`` is always anonymous, so nothing there can be authorised by a
session cookie. A view that needs a signed-in member of staff, such as token
introspection, must not be under an API prefix.

These are subclasses, so Django's admin checks (which look for the session, authentication
and message middleware or subclasses of them) still hold.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth import middleware as auth_middleware
from django.contrib.auth.models import AnonymousUser
from django.contrib.messages import middleware as messages_middleware
from django.contrib.sessions import middleware as sessions_middleware
from django.http import HttpRequest
from django_otp import middleware as otp_middleware


def is_api_request(request: HttpRequest) -> bool:
    """Whether ``request`` is for a machine-to-machine endpoint (see the module's doc)."""
    return request.path_info.startswith(settings.API_PATH_PREFIXES)


class _BrowserOnly:
    """Runs the middleware it is mixed into only for browser paths (synchronous serving;
    under ASGI every path still gets the whole middleware, which is correct, only slower)."""

    get_response: Callable[[HttpRequest], Any]

    def __call__(self, request: HttpRequest) -> Any:
        if is_api_request(request):
            return self.get_response(request)
        return super().__call__(request)  # type: ignore[misc]


REFRESHED_KEY = "_ix_refreshed"


class SessionMiddleware(_BrowserOnly, sessions_middleware.SessionMiddleware):
    """Sessions end after ``SESSION_COOKIE_AGE`` without activity. Rather than saving every
    session on every request to push its expiry back (``SESSION_SAVE_EVERY_REQUEST``: a
    write to the session store per page, per launch step), an unchanged session is saved
    when its expiry was last pushed back ``SESSION_REFRESH_SECONDS`` ago or more. A session
    therefore never outlives its idle timeout; it may end up to that many seconds sooner."""

    def process_response(self, request: HttpRequest, response: Any) -> Any:
        session = getattr(request, "session", None)
        if session is not None and session.session_key is not None and not session.modified:
            stamped = session.get(REFRESHED_KEY, 0)  # (an unknown or expired key loads empty)
            now = int(time.time())
            if not session.is_empty() and now - stamped >= settings.SESSION_REFRESH_SECONDS:
                session[REFRESHED_KEY] = now  # modified: saved, with a new expiry
        return super().process_response(request, response)


class AuthenticationMiddleware(_BrowserOnly, auth_middleware.AuthenticationMiddleware):
    def __call__(self, request: HttpRequest) -> Any:
        if is_api_request(request):
            request.user = AnonymousUser()
        return super().__call__(request)


class OTPMiddleware(_BrowserOnly, otp_middleware.OTPMiddleware):
    pass


class MessageMiddleware(_BrowserOnly, messages_middleware.MessageMiddleware):
    pass
