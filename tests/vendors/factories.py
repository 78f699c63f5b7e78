"""Factories for vendors: a vendor is "ready" for approvals when it has a current agreement
and a current security review (``ready_vendor``)."""

from __future__ import annotations

import datetime as dt

import factory
from django.utils import timezone

from apps.vendors.models import (
    ContactRole,
    DataProcessingAgreement,
    Integration,
    IntegrationKind,
    IntegrationStatus,
    SecurityReview,
    Vendor,
    VendorContact,
)

ALL_CLASSES = [
    "identifier", "directory", "contact", "demographic", "special_category", "assessment",
    "credential",
]


class VendorFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Vendor

    name = factory.Sequence(lambda n: f"Vendor {n}")


class ContactFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = VendorContact

    vendor = factory.SubFactory(VendorFactory)
    role = ContactRole.PRIMARY
    name = factory.Sequence(lambda n: f"Contact {n}")
    email = factory.Sequence(lambda n: f"contact{n}@vendor.example")


class AgreementFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DataProcessingAgreement

    vendor = factory.SubFactory(VendorFactory)
    reference = factory.Sequence(lambda n: f"DPA-{n:04d}")
    signed_on = factory.LazyFunction(lambda: timezone.localdate() - dt.timedelta(days=30))
    expires_on = factory.LazyFunction(lambda: timezone.localdate() + dt.timedelta(days=700))
    retention_commitment = "For the life of the service."
    deletion_commitment = "Within 30 days of the end of the service."
    incident_reporting_commitment = "By email to the DPO within 72 hours."
    incident_reporting_hours = 72
    allowed_field_classes = factory.LazyFunction(lambda: ["identifier", "directory"])


class SecurityReviewFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SecurityReview

    vendor = factory.SubFactory(VendorFactory)
    reviewed_on = factory.LazyFunction(lambda: timezone.localdate() - dt.timedelta(days=10))
    expires_on = factory.LazyFunction(lambda: timezone.localdate() + dt.timedelta(days=355))
    key_management = True
    incident_reporting = True
    retention = True
    mfa = True
    encryption = True


class IntegrationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Integration

    vendor = factory.SubFactory(VendorFactory)
    name = factory.Sequence(lambda n: f"Integration {n}")
    kind = IntegrationKind.ONEROSTER_REST
    status = IntegrationStatus.ACTIVE
    pseudonymised = False


def ready_vendor(*, classes: list[str] | None = None, fields: list[str] | None = None,
                 **kwargs) -> Vendor:  # type: ignore[no-untyped-def]
    """A vendor with a current agreement (allowing ``classes``/``fields``), a current security
    review and a primary contact."""
    vendor = VendorFactory(**kwargs)
    AgreementFactory(vendor=vendor, allowed_field_classes=classes or ["identifier", "directory"],
                     allowed_fields=fields or [])
    SecurityReviewFactory(vendor=vendor)
    ContactFactory(vendor=vendor, role=ContactRole.PRIMARY, email="primary@vendor.example")
    return vendor
