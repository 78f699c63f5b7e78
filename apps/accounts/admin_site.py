"""The admin site every persona works in, with MFA enforced where the environment says so."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.contrib.auth.views import LoginView
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django_otp import login as otp_login

from apps.accounts.forms import StaffLoginForm
from apps.accounts.mfa import needs_enrolment, user_is_verified


class StaffLoginView(LoginView):
    form_class = StaffLoginForm
    template_name = "admin/login.html"

    def form_valid(self, form: StaffLoginForm) -> HttpResponse:
        response = super().form_valid(form)
        if form.otp_device is not None:
            otp_login(self.request, form.otp_device)
        return response


class InterchangeAdminSite(admin.AdminSite):
    site_header = "Interchange"
    site_title = "Interchange"
    index_title = "Governance portal"
    site_url = None  # no public site behind the admin; the LTI launch page comes with the lti app
    login_form = StaffLoginForm

    def has_permission(self, request: HttpRequest) -> bool:
        user = request.user
        if not (user.is_active and user.is_staff):
            return False
        return user_is_verified(request) or not settings.INTERCHANGE_REQUIRE_MFA

    def login(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        if request.method == "GET" and self.has_permission(request):
            return redirect(reverse("admin:index", current_app=self.name))
        if request.user.is_authenticated and needs_enrolment(request):
            return redirect("accounts:mfa_setup")
        context = {
            **self.each_context(request),
            "title": "Log in",
            "subtitle": None,
            "app_path": request.get_full_path(),
            "username": request.user.get_username(),
            **(extra_context or {}),
        }
        if REDIRECT_FIELD_NAME not in request.GET and REDIRECT_FIELD_NAME not in request.POST:
            context[REDIRECT_FIELD_NAME] = reverse("admin:index", current_app=self.name)
        request.current_app = self.name
        view = StaffLoginView.as_view(
            extra_context=context, authentication_form=self.login_form or StaffLoginForm
        )
        response = view(request)
        if request.method == "POST" and request.user.is_authenticated and needs_enrolment(request):
            return redirect("accounts:mfa_setup")
        return response

    def admin_view(self, view, cacheable: bool = False):  # type: ignore[no-untyped-def]
        inner = super().admin_view(view, cacheable)

        def guarded(request: HttpRequest, *args, **kwargs):  # type: ignore[no-untyped-def]
            # A staff user who signed in but has not enrolled goes to enrolment, not to a 403.
            if request.user.is_authenticated and needs_enrolment(request):
                return redirect("accounts:mfa_setup")
            return inner(request, *args, **kwargs)

        guarded.__dict__.update(inner.__dict__)
        return guarded
