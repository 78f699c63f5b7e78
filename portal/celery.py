"""The Celery application. Tasks are thin wrappers around services (see DESIGN.md)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("interchange")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
app.autodiscover_tasks(["portal"])  # ops tasks (portal/tasks.py)

# Carry the request id from the web request into the task's logs.
import portal.observability  # noqa: E402,F401  (registers the Celery signal handlers)
