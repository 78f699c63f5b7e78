"""Verification of what the offboarding app signs: certificates and control packs.

Both verify against the published evidence JWKS (``/keys/evidence/jwks``), which lists every
evidence key ever created, retired ones included, and marks revoked ones. A verifier can
pass the JWKS as a file or URL and so check a pack offline, years later; by default the
deployment's own evidence key set is used.
"""

from __future__ import annotations

import hashlib
import json
import urllib.request
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import jwt
from jwt.algorithms import RSAAlgorithm

MANIFEST = "manifest.json"
SIGNATURE = "manifest.jws"
ALGORITHMS = ["RS256"]

SIG_MISSING = "The pack has no {name}: it is not signed."
SIG_UNKNOWN_KID = "The signature names key {kid!r}, which is not in the evidence key set."
SIG_REVOKED = "The signature was made with key {kid}, revoked on {at}: it cannot be trusted."
SIG_INVALID = "The signature over manifest.json does not verify with key {kid}: {detail}."
SIG_BAD_HEADER = "The signature is not a JWS: {detail}."
FILE_MISSING = "{name} is listed in the manifest but missing from the pack."
FILE_ALTERED = "{name} was altered: its SHA-256 is {actual}, the manifest says {expected}."
FILE_UNLISTED = "{name} is in the pack but not in the manifest."
NOT_A_ZIP = "{path} is not a zip file."
MANIFEST_UNREADABLE = "manifest.json cannot be read: {detail}."


def evidence_key_set(source: str | None = None) -> dict[str, Any]:
    """The evidence JWKS: from a file or an http(s) URL, else this deployment's."""
    if not source:
        from apps.keys.selectors import evidence_jwks

        return evidence_jwks()
    if source.startswith(("http://", "https://")):
        with urllib.request.urlopen(source, timeout=10) as response:  # noqa: S310 (http(s) only)
            return json.loads(response.read())
    return json.loads(Path(source).read_text(encoding="utf-8"))


def _key_for(token: str, key_set: dict[str, Any]) -> tuple[Any, str, str | None]:
    """(public key, kid, error) for the JWS ``token``."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        return None, "", SIG_BAD_HEADER.format(detail=exc)
    kid = str(header.get("kid", ""))
    if header.get("alg") not in ALGORITHMS:
        return None, kid, SIG_BAD_HEADER.format(detail=f"algorithm {header.get('alg')!r}")
    jwk = next((k for k in key_set.get("keys", []) if k.get("kid") == kid), None)
    if jwk is None:
        return None, kid, SIG_UNKNOWN_KID.format(kid=kid)
    if jwk.get("revoked"):
        return None, kid, SIG_REVOKED.format(kid=kid, at=jwk.get("revoked_at", "?"))
    return RSAAlgorithm.from_jwk(json.dumps(jwk)), kid, None


# --- certificates --------------------------------------------------------------------------------


@dataclass
class CertificateReport:
    valid: bool
    kid: str = ""
    error: str = ""
    claims: dict[str, Any] = field(default_factory=dict)


def certificate_verify(token: str, *, jwks: str | None = None) -> CertificateReport:
    """Check an offboarding certificate's signature against the evidence key set."""
    key, kid, error = _key_for(token, evidence_key_set(jwks))
    if error:
        return CertificateReport(valid=False, kid=kid, error=error)
    try:
        claims = jwt.decode(token, key, algorithms=ALGORITHMS, options={"verify_aud": False})
    except jwt.PyJWTError as exc:
        return CertificateReport(valid=False, kid=kid, error=SIG_INVALID.format(kid=kid,
                                                                                detail=exc))
    return CertificateReport(valid=True, kid=kid, claims=claims)


# --- control packs ---------------------------------------------------------------------------


@dataclass
class FileCheck:
    name: str
    ok: bool
    error: str = ""


@dataclass
class PackReport:
    valid: bool
    signature_ok: bool
    kid: str = ""
    errors: list[str] = field(default_factory=list)
    files: list[FileCheck] = field(default_factory=list)
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def tampered(self) -> list[str]:
        """The names of the files that failed (what the command prints first)."""
        return [f.name for f in self.files if not f.ok]

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["tampered"] = self.tampered
        data["manifest"] = {k: v for k, v in self.manifest.items() if k != "files"}
        return data


def detached_verify(
    signature: str, payload: bytes, key_set: dict[str, Any]
) -> tuple[str, str | None]:
    """Verify a detached JWS (RFC 7515 appendix F) over ``payload``: (kid, error or None)."""
    key, kid, error = _key_for(signature, key_set)
    if error:
        return kid, error
    try:
        jwt.api_jws.decode_complete(signature, key, algorithms=ALGORITHMS,
                                    detached_payload=payload)
    except jwt.PyJWTError as exc:
        return kid, SIG_INVALID.format(kid=kid, detail=exc)
    return kid, None


def _sha256(archive: zipfile.ZipFile, name: str) -> str:
    digest = hashlib.sha256()
    with archive.open(name) as handle:
        while block := handle.read(64 * 1024):
            digest.update(block)
    return digest.hexdigest()


def control_pack_verify(source: Any, *, jwks: str | None = None,
                        key_set: dict[str, Any] | None = None) -> PackReport:
    """Check a pack's signature over its manifest, then every file's SHA-256 against the
    manifest; report each file that is missing, altered or unlisted by name.

    ``source`` is a path or a binary file object holding the zip.
    """
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError):
        return PackReport(valid=False, signature_ok=False,
                          errors=[NOT_A_ZIP.format(path=getattr(source, "name", source))])
    with archive:
        names = set(archive.namelist())
        for required in (MANIFEST, SIGNATURE):
            if required not in names:
                return PackReport(valid=False, signature_ok=False,
                                  errors=[SIG_MISSING.format(name=required)])
        manifest_bytes = archive.read(MANIFEST)
        signature = archive.read(SIGNATURE).decode("ascii", "replace").strip()
        kid, error = detached_verify(signature, manifest_bytes,
                                     key_set if key_set is not None else evidence_key_set(jwks))
        report = PackReport(valid=False, signature_ok=error is None, kid=kid)
        if error:
            report.errors.append(error)
            report.files.append(FileCheck(MANIFEST, False, error))
        try:
            manifest = json.loads(manifest_bytes)
            listed = manifest["files"]
        except (ValueError, KeyError, TypeError) as exc:
            report.errors.append(MANIFEST_UNREADABLE.format(detail=exc))
            return report
        report.manifest = manifest
        for name in sorted(listed):
            expected = str(listed[name].get("sha256", ""))
            if name not in names:
                check = FileCheck(name, False, FILE_MISSING.format(name=name))
            else:
                actual = _sha256(archive, name)
                check = (FileCheck(name, True) if actual == expected else FileCheck(
                    name, False, FILE_ALTERED.format(name=name, actual=actual,
                                                     expected=expected)))
            report.files.append(check)
        for name in sorted(names - set(listed) - {MANIFEST, SIGNATURE}):
            report.files.append(FileCheck(name, False, FILE_UNLISTED.format(name=name)))
        report.errors.extend(f.error for f in report.files if not f.ok and f.name != MANIFEST)
        report.valid = report.signature_ok and not report.errors
        return report
