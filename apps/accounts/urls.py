from django.urls import path

from apps.accounts import views

app_name = "accounts"
urlpatterns = [path("mfa/setup/", views.mfa_setup, name="mfa_setup")]
