"""LTI platform views: thin wrappers over ``apps.lti.services`` and ``apps.lti.selectors``.

Hand-off pages (login initiation, the id_token post) are forms that submit themselves; their
Content-Security-Policy is widened only by the one origin the form posts to.
"""

from __future__ import annotations

import time
from urllib.parse import urlsplit

from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.templatetags.static import static
from django.urls import reverse_lazy
from django.utils.html import escape
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from apps.lti import selectors, services
from apps.lti.models import MessageType

LOGIN_URL = reverse_lazy("lti:login")
NOT_LINKED = "Your account is not linked to a class list, so there are no tools to open."


def _message(request: HttpRequest, message: str, *, status: int, back: bool = True) -> HttpResponse:
    return render(request, "lti/message.html", {"message": message, "back": back}, status=status)


# The hand-off page: a form that submits itself (lti/autosubmit.js). Built by string
# formatting with every value escaped, not through the template engine: it is rendered twice
# on every launch, and the engine cost more than the rest of the view.
_HAND_OFF = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="referrer" content="no-referrer">
  <title>{title}</title>
  <script src="{script}"></script>
</head>
<body>
  <form id="lti-autosubmit" method="post" action="{action}">
    {inputs}
    <noscript><p>{title}</p><button type="submit">Continue</button></noscript>
  </form>
</body>
</html>
"""
_INPUT = '<input type="hidden" name="{name}" value="{value}">\n    '


def _autosubmit(request: HttpRequest, *, action: str, fields: dict[str, str],
                title: str) -> HttpResponse:
    inputs = "".join(_INPUT.format(name=escape(name), value=escape(value))
                     for name, value in fields.items())
    response = HttpResponse(_HAND_OFF.format(
        title=escape(title), script=escape(static("lti/autosubmit.js")), action=escape(action),
        inputs=inputs.rstrip()))
    parts = urlsplit(action)
    # Only the one origin this page posts to; the rest of the policy stays as configured.
    response._csp_update = {"form-action": [f"{parts.scheme}://{parts.netloc}"]}  # type: ignore[attr-defined]
    response["Cache-Control"] = "no-store"
    return response


class PortalLoginView(auth_views.LoginView):
    template_name = "lti/login.html"
    redirect_authenticated_user = True
    next_page = reverse_lazy("lti:launch-page")


class PortalLogoutView(auth_views.LogoutView):
    next_page = reverse_lazy("lti:login")


@never_cache
@login_required(login_url=LOGIN_URL)
def launch_page(request: HttpRequest) -> HttpResponse:
    classes = selectors.launch_page(request.user)
    if classes is None:
        return _message(request, NOT_LINKED, status=403, back=False)
    return render(request, "lti/launch_page.html", {"classes": classes})


@never_cache
@require_POST
@login_required(login_url=LOGIN_URL)
def launch_start(request: HttpRequest) -> HttpResponse:
    started = time.monotonic()
    registration = selectors.registration_by_client_id(request.POST.get("client_id", ""))
    initiation = None
    if registration is not None:
        initiation = services.launch_initiate(
            user=request.user, registration=registration,
            class_sourced_id=request.POST.get("class", ""),
            message_type=(MessageType.DEEP_LINKING if request.POST.get("deep_linking")
                          else MessageType.RESOURCE_LINK),
            resource_link_id=request.POST.get("link") or None,
        )
    if initiation is None:
        # recorded like any refused request, so monitoring sees a tool being tried
        services.launch_start_refused(registration=registration, started=started)
        return _message(request, services.REFUSED, status=403)
    return _autosubmit(request, action=initiation.url, fields=initiation.params,
                       title="Opening the tool…")


@never_cache
@csrf_exempt  # the tool's redirect; bound by the single-use hint and the session user
@require_http_methods(["GET", "POST"])
def auth(request: HttpRequest) -> HttpResponse:
    params = (request.GET if request.method == "GET" else request.POST).dict()
    outcome = services.auth_respond(params=params, user=request.user)
    if not outcome.redirect_uri:
        return _message(request, outcome.message, status=outcome.status,
                        back=outcome.status == 403)
    return _autosubmit(request, action=outcome.redirect_uri, fields=outcome.fields,
                       title="Opening the tool…")


@never_cache
@csrf_exempt  # posted by the tool's page; verified by the signed JWT and its single-use data
@require_POST
def deep_linking_return(request: HttpRequest) -> HttpResponse:
    outcome = services.deep_linking_response_accept(
        token=request.POST.get("JWT", ""), session_user=request.user
    )
    if not outcome.ok:
        return _message(request, outcome.message, status=400)
    count = len(outcome.links)
    message = f"{count} item{'s' if count != 1 else ''} added to your class."
    if outcome.tool_message:
        message += f" The tool says: {outcome.tool_message}"
    return _message(request, message, status=200)
