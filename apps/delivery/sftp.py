"""SFTP, both directions, with paramiko: key-based auth only, host key pinned.

The server's host key must equal the pinned one (no trust on first use, no known_hosts
file, no agent, no password); anything else is ``HOST_KEY_MISMATCH``, which the caller
treats as final (it may be an attacker) rather than retrying. Uploads go to a temporary
name in the target folder and are renamed into place (``posix-rename``, which replaces
an existing file atomically), so a vendor polling the folder never reads half a file and
a redelivered upload leaves one file, not two.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import stat
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO

import paramiko

# Error codes (stored on runs, asserted by tests).
HOST_KEY_MISMATCH = "host_key_mismatch"
AUTH_FAILED = "auth_failed"
UNREACHABLE = "unreachable"
TRANSFER_FAILED = "transfer_failed"
BAD_CONFIGURATION = "bad_configuration"
# Retrying cannot help these: a person has to act.
FINAL_ERRORS = frozenset({HOST_KEY_MISMATCH, AUTH_FAILED, BAD_CONFIGURATION})

MESSAGES = {
    HOST_KEY_MISMATCH: "The SFTP server at {host}:{port} presented a host key that is not the "
                       "pinned one; nothing was sent.",
    AUTH_FAILED: "The SFTP server at {host}:{port} refused the key for user {user}.",
    UNREACHABLE: "The SFTP server at {host}:{port} could not be reached: {detail}",
    TRANSFER_FAILED: "The transfer to {host}:{port} failed: {detail}",
    BAD_CONFIGURATION: "The SFTP settings are invalid: {detail}",
}

CONNECT_TIMEOUT = 15.0
_KEY_CLASSES = (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey)


class SftpError(Exception):
    def __init__(self, code: str, **params: object) -> None:
        self.code = code
        self.final = code in FINAL_ERRORS
        super().__init__(MESSAGES[code].format(**params))


@dataclass(frozen=True)
class SftpEndpoint:
    host: str
    port: int
    username: str
    host_key: str  # OpenSSH public key line
    private_key: str  # PEM / OpenSSH private key text
    directory: str = "."

    def __repr__(self) -> str:  # never print the private key
        return f"SftpEndpoint({self.username}@{self.host}:{self.port})"


def parse_public_key(line: str) -> paramiko.PKey:
    """An OpenSSH public key line ("ssh-ed25519 AAAA... comment") as a paramiko key."""
    parts = line.strip().split()
    if len(parts) < 2:
        raise SftpError(BAD_CONFIGURATION, detail="the host key is not an OpenSSH public key")
    try:
        return paramiko.PKey.from_type_string(parts[0], base64.b64decode(parts[1]))
    except (binascii.Error, paramiko.SSHException, ValueError) as exc:
        raise SftpError(BAD_CONFIGURATION, detail=f"the host key cannot be read ({exc})") from None


def load_private_key(text: str) -> paramiko.PKey:
    for cls in _KEY_CLASSES:
        try:
            return cls.from_private_key(io.StringIO(text))
        except (paramiko.SSHException, ValueError):
            continue
    raise SftpError(BAD_CONFIGURATION, detail="the private key cannot be read")


def public_key_line(private_key: str) -> str:
    key = load_private_key(private_key)
    return f"{key.get_name()} {key.get_base64()}"


@contextmanager
def sftp_session(endpoint: SftpEndpoint) -> Iterator[paramiko.SFTPClient]:
    """An SFTP session to a server proven to hold the pinned host key."""
    pinned = parse_public_key(endpoint.host_key)
    pkey = load_private_key(endpoint.private_key)
    client = paramiko.SSHClient()
    name = endpoint.host if endpoint.port == 22 else f"[{endpoint.host}]:{endpoint.port}"
    client.get_host_keys().add(name, pinned.get_name(), pinned)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    params = {"host": endpoint.host, "port": endpoint.port}
    try:
        client.connect(
            endpoint.host, port=endpoint.port, username=endpoint.username, pkey=pkey,
            allow_agent=False, look_for_keys=False, timeout=CONNECT_TIMEOUT,
            banner_timeout=CONNECT_TIMEOUT, auth_timeout=CONNECT_TIMEOUT,
            # Offer only the pinned key's algorithm, so the server cannot choose another
            # host key we have not pinned (which paramiko would also reject, less clearly).
            disabled_algorithms=_other_host_key_algorithms(pinned),
        )
    except paramiko.BadHostKeyException:
        client.close()
        raise SftpError(HOST_KEY_MISMATCH, **params) from None
    except paramiko.SSHException as exc:
        client.close()
        if "not found in known_hosts" in str(exc) or "no acceptable host key" in str(exc):
            raise SftpError(HOST_KEY_MISMATCH, **params) from None
        if isinstance(exc, paramiko.AuthenticationException):
            raise SftpError(AUTH_FAILED, user=endpoint.username, **params) from None
        raise SftpError(UNREACHABLE, detail=str(exc), **params) from None
    except (TimeoutError, OSError) as exc:
        client.close()
        raise SftpError(UNREACHABLE, detail=str(exc) or type(exc).__name__, **params) from None
    try:
        yield client.open_sftp()
    finally:
        client.close()


def _other_host_key_algorithms(pinned: paramiko.PKey) -> dict[str, list[str]]:
    wanted = pinned.get_name()
    accepted = {wanted}
    if wanted == "ssh-rsa":
        accepted |= {"rsa-sha2-256", "rsa-sha2-512"}
    every = paramiko.Transport._preferred_keys  # noqa: SLF001 (paramiko's list of names)
    return {"keys": [k for k in every if k not in accepted]}


def _join(directory: str, name: str) -> str:
    directory = directory.rstrip("/") or "."
    return name if directory == "." else f"{directory}/{name}"


def sftp_upload(endpoint: SftpEndpoint, src: BinaryIO, *, remote_name: str) -> int:
    """Upload ``src`` as ``remote_name`` in the endpoint's folder, atomically; bytes sent."""
    if "/" in remote_name or remote_name.startswith("."):
        raise SftpError(BAD_CONFIGURATION, detail="a remote file name is a plain name")
    final = _join(endpoint.directory, remote_name)
    temporary = _join(endpoint.directory, f".{remote_name}.{uuid.uuid4().hex}.part")
    with sftp_session(endpoint) as sftp:
        try:
            _remove_stale_parts(sftp, endpoint.directory, remote_name)
            attrs = sftp.putfo(src, temporary, confirm=True)
            sftp.posix_rename(temporary, final)
        except (OSError, paramiko.SSHException) as exc:
            with contextlib.suppress(OSError, paramiko.SSHException):
                sftp.remove(temporary)
            raise SftpError(TRANSFER_FAILED, host=endpoint.host, port=endpoint.port,
                            detail=str(exc) or type(exc).__name__) from None
        return int(attrs.st_size or 0)


def _remove_stale_parts(sftp: paramiko.SFTPClient, directory: str, remote_name: str) -> None:
    """Remove what an attempt that died mid-upload left of this file, so a redelivered
    upload leaves exactly one file behind."""
    prefix = f".{remote_name}."
    for name in sftp.listdir(directory or "."):
        if name.startswith(prefix) and name.endswith(".part"):
            sftp.remove(_join(directory, name))


@dataclass(frozen=True)
class RemoteFile:
    name: str
    size: int
    mtime: int


def sftp_list_zips(sftp: paramiko.SFTPClient, directory: str) -> list[RemoteFile]:
    """Regular ``.zip`` files in ``directory``, oldest first (temporary dot files skipped)."""
    out = []
    for entry in sftp.listdir_attr(directory or "."):
        name = entry.filename
        if name.startswith(".") or not name.lower().endswith(".zip"):
            continue
        if entry.st_mode is not None and not stat.S_ISREG(entry.st_mode):
            continue
        out.append(RemoteFile(name, int(entry.st_size or 0), int(entry.st_mtime or 0)))
    return sorted(out, key=lambda f: (f.mtime, f.name))
