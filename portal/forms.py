"""Form defaults shared by the admins: a URL typed without a scheme is an https one.

Django 6 makes https the default scheme of a form's URL field; until then each form says
so, or Django 5.2 assumes http (and warns).
"""

from __future__ import annotations

from typing import Any

from django.db import models

HTTPS_URL_FIELDS: dict[type[models.Field], dict[str, Any]] = {
    models.URLField: {"assume_scheme": "https"},
}


def https_formfield(field: models.Field, **kwargs: Any):  # type: ignore[no-untyped-def]
    """A ModelForm's ``formfield_callback``: URL fields assume https."""
    if isinstance(field, models.URLField):
        kwargs.setdefault("assume_scheme", "https")
    return field.formfield(**kwargs)
