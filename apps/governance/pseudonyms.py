"""Stable per-vendor pseudonyms: keyed HMAC-SHA256 of the school's identifiers.

Why HMAC with a per-vendor key: the same person gets the same pseudonym in every channel
of one vendor (REST roster, CSV bundle, LTI ``sub``), so the vendor's data joins up; a
different vendor gets different pseudonyms, so two vendors cannot join theirs; and without
the key, which never leaves the hub, a vendor cannot test a guessed identifier against a
pseudonym (a plain hash would let it).

Why it is computed in SQL: the release querysets are one query per page, and a page of a
pseudonymised roster must not turn into a Python loop. HMAC is ``H((K ^ opad) ||
H((K ^ ipad) || m))`` (RFC 2104), and PostgreSQL's built-in ``sha256()`` is all that needs,
so no extension is required. ``Pseudonymiser.pseudonym()`` computes the same value in
Python for the odd single id (an LTI launch); a test pins that the two agree.

The hub can map back: ``Pseudonymiser.reverse()`` reads ``PseudonymMap``, which is filled
in bulk (``INSERT ... SELECT`` over the current users) when a lookup misses.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.contrib.postgres.fields import ArrayField
from django.db import IntegrityError, connection, models, transaction
from django.db.models import Expression, F, Func, Value
from django.db.models.expressions import Combinable

from apps.keys.keyring import data_key_binding, keyring
from apps.keys.models import DataKey

PSEUDONYM_KEY_PURPOSE = "governance.pseudonym"
PSEUDONYM_KEY_BYTES = 32
# 128 bits of the HMAC, hex: short enough for any vendor's id column, far from colliding.
PSEUDONYM_HEX_CHARS = 32
_BLOCK = 64  # SHA-256 block size

ERROR_KEY_DESTROYED = (
    "The pseudonym key of vendor {vendor_id} was destroyed (offboarding); its pseudonyms "
    "can no longer be computed."
)


def _pads(key: bytes) -> tuple[bytes, bytes]:
    padded = key.ljust(_BLOCK, b"\x00")
    return bytes(b ^ 0x36 for b in padded), bytes(b ^ 0x5C for b in padded)


def _binary(value: bytes) -> Value:
    return Value(value, output_field=models.BinaryField())


def _hmac_template(value_sql: str, ipad_sql: str, opad_sql: str) -> str:
    return (
        f"substr(encode(sha256({opad_sql} || sha256({ipad_sql} || convert_to({value_sql}, "
        f"'UTF8'))), 'hex'), 1, {PSEUDONYM_HEX_CHARS})"
    )


class _Hmac(Func):
    """The pseudonym of a text expression (NULL stays NULL)."""

    def __init__(self, value: Expression | Combinable, ipad: bytes, opad: bytes) -> None:
        super().__init__(value, _binary(ipad), _binary(opad), output_field=models.TextField())

    def as_sql(self, compiler, connection, **extra_context):  # type: ignore[no-untyped-def]
        (value_sql, value_params), (ipad_sql, ipad_params), (opad_sql, opad_params) = (
            compiler.compile(arg) for arg in self.get_source_expressions()
        )
        return (
            _hmac_template(value_sql, ipad_sql, opad_sql),
            (*opad_params, *ipad_params, *value_params),
        )


class _HmacArray(Func):
    """Each element of a text array, pseudonymised, order kept; NULL stays NULL."""

    def __init__(self, column: Expression | Combinable, ipad: bytes, opad: bytes) -> None:
        super().__init__(
            column, _binary(ipad), _binary(opad), output_field=ArrayField(models.TextField())
        )

    def as_sql(self, compiler, connection, **extra_context):  # type: ignore[no-untyped-def]
        (col_sql, col_params), (ipad_sql, ipad_params), (opad_sql, opad_params) = (
            compiler.compile(arg) for arg in self.get_source_expressions()
        )
        element = _hmac_template("_e.v", ipad_sql, opad_sql)
        sql = (
            f"CASE WHEN {col_sql} IS NULL THEN NULL ELSE ARRAY(SELECT {element} "  # noqa: S608
            f"FROM unnest({col_sql}) WITH ORDINALITY AS _e(v, n) ORDER BY _e.n) END"
        )
        return sql, (*col_params, *opad_params, *ipad_params, *col_params)


@dataclass(frozen=True)
class Pseudonymiser:
    """What a release uses to turn the school's identifiers into the vendor's.

    Disabled (``enabled=False``) for an integration that is not pseudonymised: every
    method is then the identity, so spokes call it unconditionally.
    """

    vendor_id: int | None
    enabled: bool
    _ipad: bytes = field(default=b"", repr=False, compare=False)
    _opad: bytes = field(default=b"", repr=False, compare=False)

    # --- values --------------------------------------------------------------------------

    def pseudonym(self, sourced_id: str) -> str:
        if not self.enabled:
            return sourced_id
        inner = hashlib.sha256(self._ipad + sourced_id.encode()).digest()
        return hashlib.sha256(self._opad + inner).hexdigest()[:PSEUDONYM_HEX_CHARS]

    def pseudonyms(self, sourced_ids: Iterable[str]) -> dict[str, str]:
        """Bulk form: ``{sourced_id: pseudonym}`` (no query)."""
        return {sid: self.pseudonym(sid) for sid in sourced_ids}

    # --- SQL ------------------------------------------------------------------------------

    def sql(self, column: str | Expression | Combinable) -> Expression | Combinable:
        """The pseudonym of a text column, as an expression of the query it is used in."""
        expr = F(column) if isinstance(column, str) else column
        if not self.enabled:
            return expr
        return _Hmac(expr, self._ipad, self._opad)

    def sql_text(self, value_sql: str) -> tuple[str, list[bytes]]:
        """The pseudonym of a text expression in raw SQL, with its parameters (for SQL
        written by hand, such as the embedded records of a rendered page)."""
        if not self.enabled:
            return value_sql, []
        return _hmac_template(value_sql, "%s", "%s"), [self._opad, self._ipad]

    def sql_array(self, column: str | Expression | Combinable) -> Expression | Combinable:
        expr = F(column) if isinstance(column, str) else column
        if not self.enabled:
            return expr
        return _HmacArray(expr, self._ipad, self._opad)

    # --- mapping back (hub only) -----------------------------------------------------------

    def reverse(self, pseudonyms: Iterable[str]) -> dict[str, str]:
        """``{pseudonym: sourced_id}`` for the pseudonyms of current roster users (and any
        sourcedId mapped before). Unknown pseudonyms are simply absent."""
        from apps.governance.models import PseudonymMap

        wanted = set(pseudonyms)
        if not self.enabled:
            return {p: p for p in wanted}
        if not wanted:
            return {}
        found = dict(
            PseudonymMap.objects.filter(vendor_id=self.vendor_id, pseudonym__in=wanted)
            .values_list("pseudonym", "sourced_id")
        )
        if len(found) < len(wanted) and self._map_is_stale():
            self.map_current_users()
            found = dict(
                PseudonymMap.objects.filter(vendor_id=self.vendor_id, pseudonym__in=wanted)
                .values_list("pseudonym", "sourced_id")
            )
        return found

    def _map_is_stale(self) -> bool:
        from apps.governance.models import VendorPseudonymKey
        from apps.roster.selectors import version_latest_number

        mapped = VendorPseudonymKey.objects.filter(vendor_id=self.vendor_id).values_list(
            "mapped_version", flat=True
        ).first()
        return mapped is None or mapped < version_latest_number()

    def map_current_users(self) -> int:
        """Add every current roster user missing from the map, in one statement, and note
        the roster version it is complete for."""
        if not self.enabled:
            return 0
        from apps.governance.models import VendorPseudonymKey
        from apps.roster.models import User
        from apps.roster.selectors import version_latest_number

        version = version_latest_number()

        hmac_sql, pads = self.sql_text("u.sourced_id")
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO governance_pseudonymmap (vendor_id, pseudonym, sourced_id, "  # noqa: S608
                "created_at) "
                f"SELECT DISTINCT %s, {hmac_sql}, u.sourced_id, now() "
                f"FROM {User._meta.db_table} u WHERE u.valid_to_version IS NULL "
                "ON CONFLICT (vendor_id, pseudonym) DO NOTHING",
                [self.vendor_id, *pads],
            )
            added = cursor.rowcount
        VendorPseudonymKey.objects.filter(vendor_id=self.vendor_id).update(mapped_version=version)
        return added

    def map_sourced_ids(self, sourced_ids: Iterable[str]) -> int:
        """Record given sourcedIds (e.g. not-yet-imported people) in the map, in bulk."""
        if not self.enabled:
            return 0
        ids = sorted(set(sourced_ids))
        if not ids:
            return 0
        pairs = self.pseudonyms(ids)
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO governance_pseudonymmap (vendor_id, pseudonym, sourced_id, "
                "created_at) SELECT %s, p, s, now() FROM unnest(%s::text[], %s::text[]) "
                "AS t(p, s) ON CONFLICT (vendor_id, pseudonym) DO NOTHING",
                [self.vendor_id, [pairs[i] for i in ids], ids],
            )
            return cursor.rowcount


IDENTITY = Pseudonymiser(vendor_id=None, enabled=False)


def _key_create(vendor_id: int):  # type: ignore[no-untyped-def]
    from apps.governance.models import VendorPseudonymKey

    key_id = uuid.uuid4()
    raw = os.urandom(PSEUDONYM_KEY_BYTES)
    wrapped = keyring().wrap(
        raw, purpose=data_key_binding(PSEUDONYM_KEY_PURPOSE), object_id=str(key_id)
    )
    try:
        with transaction.atomic():
            data_key = DataKey.objects.create(
                id=key_id, purpose=PSEUDONYM_KEY_PURPOSE, wrapped_key=wrapped.blob,
                master_key_id=wrapped.master_key_id,
            )
            return VendorPseudonymKey.objects.create(vendor_id=vendor_id, data_key=data_key)
    except IntegrityError:
        # Another request created the vendor's key first: theirs is the key.
        return VendorPseudonymKey.objects.select_related("data_key").get(vendor_id=vendor_id)


def pseudonymiser_for_vendor(vendor_id: int) -> Pseudonymiser:
    """The vendor's pseudonymiser; its key is created on first use (one per vendor)."""
    from apps.governance.models import VendorPseudonymKey

    key = VendorPseudonymKey.objects.select_related("data_key").filter(vendor_id=vendor_id).first()
    if key is None:
        key = _key_create(vendor_id)
    data_key = key.data_key
    if data_key.destroyed_at is not None:
        raise RuntimeError(ERROR_KEY_DESTROYED.format(vendor_id=vendor_id))
    raw = keyring().unwrap(
        bytes(data_key.wrapped_key),
        master_key_id=data_key.master_key_id,
        purpose=data_key_binding(data_key.purpose),
        object_id=str(data_key.pk),
    )
    ipad, opad = _pads(raw)
    return Pseudonymiser(vendor_id=vendor_id, enabled=True, _ipad=ipad, _opad=opad)


def hmac_reference(key: bytes, value: str) -> str:
    """The textbook HMAC, for tests to check the SQL and Python forms against."""
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:PSEUDONYM_HEX_CHARS]
