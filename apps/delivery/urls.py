from django.urls import path

from apps.delivery import views

app_name = "delivery"

urlpatterns = [
    path("delivery/download/<str:token>", views.download, name="download"),
]
