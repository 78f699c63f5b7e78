"""The staged copy of an uploaded feed: encrypted at rest, read without a plaintext copy.

Every staged file goes through ``stage_file`` (and out through ``open_staged`` and
``purge_staged``), so where and how imports rest on disk is decided here only.
Encryption is the keys app's envelope encryption; purging destroys the file's data
key as well as the file (crypto-shredding, in case a copy survives in a backup).
"""

from __future__ import annotations

import hashlib
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from django.conf import settings

from apps.keys import files

PURPOSE = "roster.staged_import"
COPY_CHUNK = 1024 * 1024


def staging_dir() -> Path:
    return Path(settings.INTERCHANGE_STAGING_DIR) / "roster"


def stage_file(src: BinaryIO) -> tuple[Path, str, int]:
    """Encrypt ``src`` into the staging folder; returns (path, sha256 hex, size)."""
    digest = hashlib.sha256()
    size = 0
    path = staging_dir() / f"{uuid.uuid4().hex}.zip.enc"
    with files.open_encrypted(path, purpose=PURPOSE) as writer:
        while block := src.read(COPY_CHUNK):
            digest.update(block)
            size += len(block)
            writer.write(block)
    return path, digest.hexdigest(), size


def open_staged(path: str | Path) -> BinaryIO:
    """A seekable plaintext view of a staged file (decrypted chunk by chunk in memory)."""
    return files.open_decrypted(path, purpose=PURPOSE)


@contextmanager
def staged_plaintext(path: str | Path) -> Iterator[Path]:
    """A plaintext copy of a staged file, for readers that need a path, for as short as
    possible: in memory-backed /dev/shm where the machine has it, mode 0600, deleted on
    exit. (The parser opens each zip entry by path; given a file object, this copy
    would not be needed: ``open_staged`` above.)"""
    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else staging_dir()  # noqa: S108
    folder = Path(tempfile.mkdtemp(prefix="interchange-roster-", dir=base))
    plain = folder / "feed.zip"
    try:
        files.decrypt_file(path, plain, purpose=PURPOSE)
        yield plain
    finally:
        plain.unlink(missing_ok=True)
        folder.rmdir()


def purge_staged(path: str | Path) -> None:
    """Delete the staged file and destroy its data key."""
    path = Path(path)
    if not path.exists():
        return
    key_id = files.data_key_id_of(path)
    path.unlink()
    files.data_keys_destroy(data_key_ids=[key_id], reason="roster staged file retention")


def sha256_of(src: BinaryIO) -> str:
    digest = hashlib.sha256()
    while block := src.read(COPY_CHUNK):
        digest.update(block)
    return digest.hexdigest()
